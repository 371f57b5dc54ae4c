/**
 * Automation safety rails (docs/safety-rails.md): silences, and (added by
 * their own work) the kill switch, storm limits, circuit breakers and stuck
 * runs. This file is the folder's only public surface.
 */
export {
  MAX_SILENCE_MS,
  MAX_SILENCE_TEXT,
  SilenceCache,
  Silences,
  matcherText,
  parseSilenceMatchers,
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
