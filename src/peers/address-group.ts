/**
 * Address groups (docs/protocol.md, "Defences"): peers in one group are assumed to be run by one
 * party, so inbound slots and bans are counted per group. IPv4 groups by /16 (Bitcoin Core's
 * netgroup) — loopback included: 127.1.0.1 and 127.2.0.1 are different groups, so local tests
 * can play several parties. IPv6 groups by /32 (a typical allocation to one provider or site).
 * IPv4-mapped IPv6 groups as its IPv4 address. A DNS name is its own group. Parsed from the
 * multiaddr string by hand: no libp2p import.
 */

/** The group of an address nobody could parse: all such peers share one group (and its cap). */
export const UNKNOWN_ADDRESS_GROUP = 'unknown'

/** The group key of an IPv4 dotted quad, or undefined if it is not one. */
export function ipv4Group(ip: string): string | undefined {
  const octets = parseIpv4(ip)
  return octets === undefined ? undefined : `ip4:${octets[0]}.${octets[1]}`
}

function parseIpv4(ip: string): number[] | undefined {
  const parts = ip.split('.')
  if (parts.length !== 4) return undefined
  const octets: number[] = []
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part)) return undefined
    const value = Number(part)
    if (value > 255) return undefined
    octets.push(value)
  }
  return octets
}

/** The eight 16-bit words of an IPv6 address (with `::` and a trailing dotted quad), or undefined. */
export function parseIpv6(ip: string): number[] | undefined {
  const zone = ip.indexOf('%')
  const text = (zone >= 0 ? ip.slice(0, zone) : ip).toLowerCase()
  if (text.length === 0 || text.length > 45) return undefined
  const halves = text.split('::')
  if (halves.length > 2) return undefined
  const words = (half: string): number[] | undefined => {
    if (half === '') return []
    const out: number[] = []
    const groups = half.split(':')
    for (let i = 0; i < groups.length; i++) {
      const group = groups[i] as string
      if (i === groups.length - 1 && group.includes('.')) {
        const octets = parseIpv4(group)
        if (octets === undefined) return undefined
        out.push(((octets[0] as number) << 8) | (octets[1] as number), ((octets[2] as number) << 8) | (octets[3] as number))
      } else {
        if (!/^[0-9a-f]{1,4}$/.test(group)) return undefined
        out.push(parseInt(group, 16))
      }
    }
    return out
  }
  const head = words(halves[0] as string)
  if (head === undefined) return undefined
  if (halves.length === 1) return head.length === 8 ? head : undefined
  const tail = words(halves[1] as string)
  if (tail === undefined || head.length + tail.length > 7) return undefined
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail]
}

/** The group key of an IPv6 address, or undefined if it is not one. */
export function ipv6Group(ip: string): string | undefined {
  const w = parseIpv6(ip)
  if (w === undefined) return undefined
  // ::ffff:a.b.c.d is an IPv4 peer seen through a dual-stack socket: same party, same group.
  if (w.slice(0, 5).every((word) => word === 0) && w[5] === 0xffff) {
    return `ip4:${(w[6] as number) >> 8}.${(w[6] as number) & 0xff}`
  }
  return `ip6:${(w[0] as number).toString(16)}:${(w[1] as number).toString(16)}`
}

/**
 * The address group of a multiaddr string (`/ip4/1.2.3.4/tcp/5`, `/ip6/…`, `/dns4/name/…`) or
 * of a bare IP; UNKNOWN_ADDRESS_GROUP when neither.
 */
export function addressGroup(address: string | undefined): string {
  if (address === undefined) return UNKNOWN_ADDRESS_GROUP
  if (!address.startsWith('/')) return ipv4Group(address) ?? ipv6Group(address) ?? UNKNOWN_ADDRESS_GROUP
  const parts = address.split('/')
  const protocol = parts[1]
  const value = parts[2]
  if (value === undefined || value.length === 0) return UNKNOWN_ADDRESS_GROUP
  switch (protocol) {
    case 'ip4':
      return ipv4Group(value) ?? UNKNOWN_ADDRESS_GROUP
    case 'ip6':
      return ipv6Group(value) ?? UNKNOWN_ADDRESS_GROUP
    case 'dns':
    case 'dns4':
    case 'dns6':
    case 'dnsaddr':
      return value.length <= 253 ? `dns:${value.toLowerCase()}` : UNKNOWN_ADDRESS_GROUP
    default:
      return UNKNOWN_ADDRESS_GROUP
  }
}

/**
 * The host of a multiaddr string (`/ip4/1.2.3.4/tcp/5` → `ip4:1.2.3.4`), or undefined when it
 * names none: the key of per-host records (AddressCooldowns), finer than the address group.
 */
export function addressHost(address: string | undefined): string | undefined {
  if (address === undefined || !address.startsWith('/')) return undefined
  const parts = address.split('/')
  const protocol = parts[1]
  const value = parts[2]
  if (value === undefined || value.length === 0 || value.length > 253) return undefined
  switch (protocol) {
    case 'ip4':
    case 'ip6':
    case 'dns':
    case 'dns4':
    case 'dns6':
      return `${protocol}:${value.toLowerCase()}`
    default:
      return undefined
  }
}
