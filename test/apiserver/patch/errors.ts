// Distinguishes the two ways a patch can fail, because the real server answers them differently:
// a malformed patch document is a 400, a well-formed one that does not apply is a 422.

export class MalformedPatchError extends Error {}

export class PatchNotApplicableError extends Error {}
