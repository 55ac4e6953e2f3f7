/**
 * What a rollout is, what it asks central to publish, and where it reads telemetry. The
 * manager depends only on these two small interfaces (`RolloutPublisher`,
 * `RolloutTelemetry`), so central wires it without the manager knowing central.
 */
import type { Comparison, CompareQuery } from '../telemetry/query.ts'

/** Thresholds of the analysis at each step (B judged against A). */
export interface AnalysisSpec {
  /** Requests each version needs in the window before a verdict; fewer => the step waits. Default 50. */
  minRequests: number
  /** B's 5xx rate may exceed A's by at most this (absolute). Default 0.01. */
  maxErrorRateIncrease: number
  /** B's success rate must be at least this, when set (Flagger's request-success-rate). */
  minSuccessRate?: number
  /** B's p99 may be at most max(A.p99 * ratio, A.p99 + slack). Defaults 1.5 and 5 ms. */
  maxP99Ratio: number
  p99SlackMs: number
  /** B's trap rate may exceed A's by at most this (absolute). Default 0.001. */
  maxTrapRateIncrease: number
  /** B's fuel per request may be at most A's times this. Default 2. */
  maxFuelRatio: number
  /** Failed analyses (in one step) before an automatic rollback. Default 1. */
  failureLimit: number
}

export const DEFAULT_ANALYSIS: AnalysisSpec = {
  minRequests: 50,
  maxErrorRateIncrease: 0.01,
  maxP99Ratio: 1.5,
  p99SlackMs: 5,
  maxTrapRateIncrease: 0.001,
  maxFuelRatio: 2,
  failureLimit: 1,
}

/** What an operator asks for. */
export interface RolloutSpec {
  group: string
  /** Filter chain and the filter (by its name in the chain) whose version moves. */
  chain: string
  filter: string
  /** Bundle refs `name@version`: A (now running) and B (the candidate). */
  from: string
  to: string
  /** Share of B per step, in percent (0 < p <= 100, increasing); default [1, 5, 25, 50, 100]. */
  steps?: number[]
  /** Time per step before its analysis, ms; default 60 s. */
  intervalMs?: number
  analysis?: Partial<AnalysisSpec>
  /** Sticky key for the split; else the request id. */
  stickyHeader?: string
  stickyCookie?: string
}

export const RolloutState = {
  Progressing: 'progressing',
  Paused: 'paused',
  Promoted: 'promoted',
  RolledBack: 'rolled-back',
  Aborted: 'aborted',
} as const
export type RolloutState = (typeof RolloutState)[keyof typeof RolloutState]

export const ACTIVE_STATES: readonly RolloutState[] = [RolloutState.Progressing, RolloutState.Paused]

export interface Rollout {
  id: string
  group: string
  chain: string
  filter: string
  from: string
  to: string
  /** Steps in basis points. */
  steps: number[]
  intervalMs: number
  analysis: AnalysisSpec
  stickyHeader?: string
  stickyCookie?: string
  state: RolloutState
  /** Index into `steps` of the current step. */
  step: number
  /** B's current share, basis points. */
  weightB: number
  stepStartedMs: number
  /** Epoch that carried the current step's split (telemetry before it is not this step's). */
  stepEpoch: number
  failures: number
  /** Why the step is not moving, when it waits for data. */
  waiting: string | undefined
  createdMs: number
  updatedMs: number
  reason: string
}

/** One change the manager asks central to publish as a new epoch. */
export type RolloutChange =
  | {
      kind: 'split'
      rollout: string
      chain: string
      filter: string
      from: string
      to: string
      /** B's share in basis points (0..10000). */
      weightB: number
      stickyHeader?: string
      stickyCookie?: string
      reason: string
    }
  | {
      /** The slot runs one version (rollout ended, or a rollback after promotion). */
      kind: 'set-version'
      rollout?: string
      chain: string
      filter: string
      version: string
      reason: string
    }
  | { kind: 'kills'; rules: KillEntry[]; reason: string }

/**
 * Central's side: publish a change as the next epoch of a group ('*': every group) and
 * return that epoch. Throwing refuses the change (the rollout does not move).
 */
export interface RolloutPublisher {
  publish(group: string, change: RolloutChange): number | Promise<number>
}

/** Where analysis reads B vs A. */
export interface RolloutTelemetry {
  compare(q: CompareQuery, now: number): Comparison
}

export interface Clock {
  now(): number
}

export interface KillEntry {
  scope: 'filter' | 'bundle' | 'signer'
  target: string
  reason?: string
  atMs: number
  epoch: number
}

export interface HistoryEntry {
  seq: number
  rollout: string
  atMs: number
  /** Epoch of the change, or 0 when nothing was published (e.g. "waiting for data"). */
  epoch: number
  event: string
  state: RolloutState
  weightB: number
  reason: string
  detail?: unknown
  /** sha256 of the previous entry's hash and this entry: the history is append-only. */
  hash: string
}
