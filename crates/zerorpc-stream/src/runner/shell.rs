//! Shell (multi-lang) components in the runner: a subprocess per task,
//! driven like Storm's ShellSpout/ShellBolt, without their pains: a stray
//! line on stdout is reported with the component, a busy subprocess is not
//! killed while it works, a stuck or dead one is reported and restarted.
