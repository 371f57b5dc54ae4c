/**
 * Automation safety rails (docs/safety-rails.md): the kill switch and circuit
 * breaker, silences. Storm limits, cooldowns and outcomes are decided in
 * ingest's statement (fb_rails_verdict); stuck runs and repairs are the
 * engine's. This file is the folder's only public surface.
 */
export { Automation, playbookRails, type AutomationDeps, type AutomationStatus, type Pause, type PlaybookRails } from './automation.js';
export {
  MAX_SILENCE_MS,
  MAX_SILENCE_TEXT,
  SilenceCache,
  Silences,
  matcherText,
  parseSilenceMatchers,
  splitOutsideQuotes,
  type AlertmanagerMatcher,
  type MatcherInput,
  type NewSilence,
  type SilenceListState,
  type SilenceMatch,
  type SilenceState,
  type SilenceView,
  type SilencesDeps,
  type StoredMatcher,
} from './silences.js';
