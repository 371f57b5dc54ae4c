/**
 * The audit key, signed checkpoints of the timeline's chain heads, and the
 * verifier behind `firebreak audit verify`. See docs/audit.md.
 */
export { AuditKey, AuditKeyError, AUDIT_KEY_FILE, loadAuditKey, type LoadedAuditKey } from './key.js';
export { CheckpointWriter, HEADS_PER_CHECKPOINT, listCheckpoints, signCheckpoint, writeCheckpoints, type Checkpoint, type CheckpointHead } from './checkpoints.js';
export { parseCheckpointFile } from './file.js';
export { auditPassed, verifyAudit, type BrokenEvent, type BrokenRecord, type VerifyOptions, type VerifyReport } from './verify.js';
