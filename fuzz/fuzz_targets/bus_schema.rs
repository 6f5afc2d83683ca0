//! `zerorpc_fuzz::bus_schema` under libFuzzer (the body is shared with the
//! workspace's smoke test).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zerorpc_fuzz::bus_schema(data));
