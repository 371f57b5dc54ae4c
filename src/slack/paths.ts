/** Where Slack sends events, interactivity and slash commands in HTTP mode. */
export const SLACK_EVENTS_PATH = '/slack/events';
