/** Address groups (src/peers/address-group.ts): table-driven, with invalid inputs. */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { UNKNOWN_ADDRESS_GROUP, addressGroup, parseIpv6 } from '../../../src/peers/address-group.ts'

describe('addressGroup', () => {
  const cases: [string | undefined, string][] = [
    ['/ip4/1.2.3.4/tcp/5', 'ip4:1.2'],
    ['/ip4/1.2.200.9/tcp/5/p2p/12D3KooW', 'ip4:1.2'],
    ['1.2.3.4', 'ip4:1.2'],
    // Loopback groups by /16 too, so local tests can play several parties.
    ['/ip4/127.1.0.1/tcp/4001', 'ip4:127.1'],
    ['/ip4/127.2.0.1/tcp/4001', 'ip4:127.2'],
    ['/ip4/127.0.0.1/tcp/4001', 'ip4:127.0'],
    ['/ip6/2001:db8::1/tcp/5', 'ip6:2001:db8'],
    ['/ip6/2001:0db8:ffff:1::/tcp/5', 'ip6:2001:db8'],
    ['/ip6/2001:db9::1/tcp/5', 'ip6:2001:db9'],
    ['/ip6/::1/tcp/5', 'ip6:0:0'],
    ['/ip6/::ffff:1.2.3.4/tcp/5', 'ip4:1.2'],
    ['/ip6/fe80::1%eth0/tcp/5', 'ip6:fe80:0'],
    ['/dns4/Node.Example.com/tcp/5', 'dns:node.example.com'],
    [undefined, UNKNOWN_ADDRESS_GROUP],
    ['', UNKNOWN_ADDRESS_GROUP],
    ['/ip4/256.1.1.1/tcp/5', UNKNOWN_ADDRESS_GROUP],
    ['/ip4/1.2.3/tcp/5', UNKNOWN_ADDRESS_GROUP],
    ['/ip4/1.2.3.04x/tcp/5', UNKNOWN_ADDRESS_GROUP],
    ['/ip6/1:2:3:4:5:6:7:8:9/tcp/5', UNKNOWN_ADDRESS_GROUP],
    ['/ip6/1::2::3/tcp/5', UNKNOWN_ADDRESS_GROUP],
    ['/ip6/12345::/tcp/5', UNKNOWN_ADDRESS_GROUP],
    ['/memory/x', UNKNOWN_ADDRESS_GROUP],
    ['/ip4', UNKNOWN_ADDRESS_GROUP],
    ['not an address', UNKNOWN_ADDRESS_GROUP],
  ]
  for (const [input, group] of cases) {
    it(`${JSON.stringify(input)} → ${group}`, () => assert.equal(addressGroup(input), group))
  }

  it('parseIpv6 expands :: and a trailing dotted quad', () => {
    assert.deepEqual(parseIpv6('::'), [0, 0, 0, 0, 0, 0, 0, 0])
    assert.deepEqual(parseIpv6('1::8'), [1, 0, 0, 0, 0, 0, 0, 8])
    assert.deepEqual(parseIpv6('1:2:3:4:5:6:7:8'), [1, 2, 3, 4, 5, 6, 7, 8])
    assert.deepEqual(parseIpv6('::ffff:10.0.0.1'), [0, 0, 0, 0, 0, 0xffff, 0x0a00, 0x0001])
    assert.equal(parseIpv6('1:2:3:4:5:6:7'), undefined)
  })
})
