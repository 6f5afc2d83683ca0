//! Storm's XOR acker, sans-IO: trees by root id, the XOR of their edges, a
//! deadline each; driven with an explicit `now`.
