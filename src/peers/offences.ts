/**
 * Offence codes: the one table from what a peer did wrong to what it costs (docs/protocol.md,
 * "Peer scoring"). A code is stable: it is the score table's reason key, the metrics label, the
 * `net_peers` field and the name of the test that provokes it. Prose (which block, which
 * validation rule) goes to the log only, so every label set stays bounded.
 */

/** How much a class of offence costs, as in Lodestar's peer actions. */
export type PenaltyLevel = 'fatal' | 'high' | 'mid' | 'low'

interface OffenceRule {
  level: PenaltyLevel
  /** One line: why this costs what it costs. */
  why: string
}

export const OFFENCES = {
  // ---- framing and decoding: an honest implementation never sends these
  FRAME_TOO_LARGE: { level: 'high', why: 'a frame above the protocol maximum is never honest; the stream is closed' },
  FRAME_INCOMPLETE: { level: 'mid', why: 'a frame left half-sent past its deadline holds our buffer hostage' },
  GOSSIP_UNDECODABLE: { level: 'high', why: 'bytes that are not a gossip message' },
  SYNC_UNDECODABLE_REQUEST: { level: 'high', why: 'bytes that are not a sync request' },
  SYNC_UNDECODABLE_RESPONSE: { level: 'high', why: 'bytes that are not a sync response' },
  STATUS_FAILED: { level: 'mid', why: 'a status round trip failed or timed out: the peer is slow or gone' },
  // ---- invalid objects: provable from the object alone
  TX_REJECTED: { level: 'high', why: 'a transaction invalid on its face (signature, encoding, chain): one penalty per message' },
  BLOCK_REJECTED: { level: 'fatal', why: 'a block invalid by rules every node checks (leader, signature, roots)' },
  COMPACT_BLOCK_INVALID: { level: 'high', why: 'a compact block whose txids disagree with its header, or a blocktxn that does not fill it' },
  // ---- gossip noise: honest peers produce a little, so each costs little
  GOSSIP_UNSOLICITED: { level: 'low', why: 'a response nobody asked for (marked solicited, stray notfound or blocktxn)' },
  GOSSIP_DUPLICATE: { level: 'low', why: 'full copies of objects we already had, beyond what racing pushes explain' },
  GOSSIP_NOT_DELIVERED: { level: 'low', why: 'announced an object, then did not deliver it (notfound or timeout after getdata)' },
  TX_IGNORED: { level: 'low', why: 'delivered transactions we had to ignore (nonce spent, already known, underpriced) beyond what relay races explain: work for nothing' },
  TX_UNPAYABLE: { level: 'low', why: 'delivered transactions whose sender cannot pay (TX_INSUFFICIENT_FUNDS): cheap to sign from an unfunded key, dear to check, and rare from honest relays' },
  // ---- sync answers
  SYNC_FORGED_STATE: { level: 'fatal', why: 'state data that does not hash to what was asked: forged on purpose' },
  SYNC_FORGED_CHAIN: { level: 'fatal', why: 'headers or bodies that fail verification or were not asked for' },
  SYNC_USELESS_ANSWER: { level: 'mid', why: 'cannot serve what it advertised (missing subtree, no blocks)' },
  SYNC_REQUEST_FAILED: { level: 'low', why: 'a sync request timed out or the stream failed: often just slowness' },
  SYNC_PROMISE_BROKEN: { level: 'mid', why: 'advertised a head in status and did not serve it when asked' },
  // ---- limits
  RATE_LIMITED: { level: 'mid', why: 'asked for more than its budget: every request past the limit is refused' },
  SYNC_BUSY_IGNORED: { level: 'high', why: 'told "rate limited" because the node was busy, asked again at once, past what it had in flight: honest clients back off (BUSY_BACKOFF_MS)' },
  RATE_LIMIT_FLOOD: { level: 'high', why: 'kept asking after a refusal until another whole budget was refused within one period: a flood, not a burst' },
  EARLY_FRAMES_OVERFLOW: { level: 'high', why: 'sent more than the pre-admission buffer allows before its status was checked' },
  ANNOUNCEMENTS_OVERFLOW: { level: 'mid', why: 'more unanswered announcements than MAX_TRACKED_ANNOUNCEMENTS_PER_PEER: an inv flood' },
  SYNC_ANSWER_UNREAD: { level: 'mid', why: 'asked for data, then did not read the answer before its deadline: it holds our buffers' },
  // ---- finality (docs/protocol.md, "Vote gossip" and "Join from a certificate")
  VOTE_REJECTED: { level: 'high', why: 'a vote or evidence invalid on its face (bad signature, unknown validator, other chain): one penalty per message' },
  CERT_FORGED: { level: 'fatal', why: 'a certificate whose signatures do not verify: only a forger sends one' },
  CERT_INVALID: { level: 'high', why: 'a certificate that does not prove its header final (wrong block, unknown signer, too little stake, badly signed header)' },
} as const satisfies Record<string, OffenceRule>

export type OffenceCode = keyof typeof OFFENCES

export const OFFENCE_CODES = Object.keys(OFFENCES) as OffenceCode[]

export function offenceLevel(code: OffenceCode): PenaltyLevel {
  return OFFENCES[code].level
}

/**
 * Reward codes: the few things an honest peer does that are worth a little score. Each reward is
 * small and the sum is capped (MAX_REWARD_SCORE in scores.ts), so goodwill bought by relaying
 * cheap valid objects can absorb at most one mid-level offence, never a fatal one.
 */
interface RewardRule {
  points: number
  /** One line: why this earns what it earns. */
  why: string
}

export const REWARDS = {
  FIRST_DELIVERY_TX: { points: 0.1, why: 'first to deliver a valid new transaction: useful, but cheap to produce, so worth little' },
  FIRST_DELIVERY_BLOCK: { points: 1, why: 'first to deliver a valid new block: only leaders can mint these, so it cannot be farmed' },
  SYNC_GOOD_ANSWER: { points: 0.5, why: 'a sync answer that verified and held what was asked' },
} as const satisfies Record<string, RewardRule>

export type RewardCode = keyof typeof REWARDS

export const REWARD_CODES = Object.keys(REWARDS) as RewardCode[]
