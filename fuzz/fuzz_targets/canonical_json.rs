//! `zerorpc_fuzz::canonical_json` under libFuzzer (the body is shared with the
//! workspace's smoke test).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zerorpc_fuzz::canonical_json(data));
