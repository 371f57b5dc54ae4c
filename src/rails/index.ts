/** Automation safety rails: kill switch, circuit breaker, silences, outcomes (docs/safety-rails.md). */
export { Automation, playbookRails, type AutomationDeps, type AutomationStatus, type Pause, type PlaybookRails } from './automation.js';
