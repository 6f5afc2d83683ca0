//! Routing an emit to tasks: the groupings of every subscription to a
//! component's streams (sans-IO, deterministic given its random source).
