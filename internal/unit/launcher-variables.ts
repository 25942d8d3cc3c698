/**
 * The names of the variables vks' command launcher (internal/pod/launcher.ts) carries in a unit's
 * Environment=. Running units hold them, so `vks pod exec` (internal/exec), which sits below the
 * launcher, must recognise them too; both take the names from here.
 */

/** Every launcher variable starts with this; an environment that sets one itself is refused. */
export const LAUNCHER_VARIABLE_PREFIX = "VKS_EXEC_";
/** The launcher script itself: present only in units that run a command through the launcher. */
export const LAUNCHER_SCRIPT_VARIABLE = `${LAUNCHER_VARIABLE_PREFIX}SCRIPT`;
