/**
 * Rumor mongering as Demers et al. model it ("Epidemic Algorithms for Replicated Database
 * Maintenance", PODC 1987, section 2): n sites, one update at one site, synchronous cycles; in
 * each cycle every infective site pushes the rumor to one site chosen uniformly at random.
 * - feedback + counter: a push to a site that already knew it adds 1 to the sender's counter;
 *   at k the sender loses interest (becomes removed);
 * - blind + coin: after every push the sender loses interest with probability 1/k.
 * Reported as in the paper: residue s (share of sites never reached), traffic m (pushes per
 * site), t_ave and t_last (cycle in which a reached site first heard it, mean and last).
 */
import { seededRandom } from '../util/random.ts'

export type RumorVariant = 'feedback-counter' | 'blind-coin'

export interface RumorOutcome {
  residue: number
  traffic: number
  tAve: number
  tLast: number
}

const SUSCEPTIBLE = 0
const INFECTIVE = 1
const REMOVED = 2

export function rumorRun(n: number, k: number, variant: RumorVariant, seed: number): RumorOutcome {
  const random = seededRandom(seed)
  const state = new Uint8Array(n)
  const counter = new Uint16Array(n)
  const heardAt = new Int32Array(n).fill(-1)
  state[0] = INFECTIVE
  heardAt[0] = 0
  let infective = [0]
  let messages = 0
  let cycle = 0
  while (infective.length > 0) {
    cycle++
    const next: number[] = []
    const newlyInfected: number[] = []
    for (const site of infective) {
      let target = Math.floor(random() * (n - 1))
      if (target >= site) target++
      messages++
      // Sites infected in this cycle count as knowing it only from the next cycle on (all pushes of a cycle happen at once).
      const known = state[target] !== SUSCEPTIBLE && heardAt[target] !== cycle
      if (state[target] === SUSCEPTIBLE) {
        state[target] = INFECTIVE
        heardAt[target] = cycle
        newlyInfected.push(target)
      }
      let keep = true
      if (variant === 'feedback-counter') {
        if (known) {
          counter[site] = (counter[site] as number) + 1
          if ((counter[site] as number) >= k) keep = false
        }
      } else if (random() < 1 / k) keep = false
      if (keep) next.push(site)
      else state[site] = REMOVED
    }
    infective = next.concat(newlyInfected)
  }
  let reached = 0
  let sum = 0
  let last = 0
  for (let i = 0; i < n; i++) {
    const at = heardAt[i] as number
    if (at < 0) continue
    reached++
    sum += at
    last = Math.max(last, at)
  }
  return { residue: (n - reached) / n, traffic: messages / n, tAve: sum / reached, tLast: last }
}

/** Mean over `seeds` runs (seeds 1..seeds). */
export function rumorTable(n: number, ks: readonly number[], variant: RumorVariant, seeds: number): Array<{ k: number } & RumorOutcome> {
  return ks.map((k) => {
    const total = { residue: 0, traffic: 0, tAve: 0, tLast: 0 }
    for (let seed = 1; seed <= seeds; seed++) {
      const run = rumorRun(n, k, variant, seed * 1_000 + k)
      total.residue += run.residue
      total.traffic += run.traffic
      total.tAve += run.tAve
      total.tLast += run.tLast
    }
    return { k, residue: total.residue / seeds, traffic: total.traffic / seeds, tAve: total.tAve / seeds, tLast: total.tLast / seeds }
  })
}

/** The paper's figures quoted in the brief (feedback + counter, n = 1,000), for comparison. */
export const PAPER_FEEDBACK_COUNTER: Readonly<Record<number, { residue: number; traffic: number }>> = {
  1: { residue: 0.18, traffic: 1.7 },
  2: { residue: 0.037, traffic: 3.3 },
  3: { residue: 0.011, traffic: 4.5 },
}
