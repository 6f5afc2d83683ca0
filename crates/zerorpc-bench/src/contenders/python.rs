//! zerorpc-python 0.6.3 as a client, from the venv the tests provision.

use crate::*;

pub(crate) const PY_CLIENT: &str = r#"
import sys, time, json, zerorpc
from gevent.pool import Pool
ep, n_seq, n_conc, n_stream = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
c = zerorpc.Client(timeout=120)
c.connect(ep)
for _ in range(200):
    c.echo(1)
lat = []
for _ in range(n_seq):
    t = time.perf_counter(); c.echo(1); lat.append(time.perf_counter() - t)
lat.sort()
def rate(k, n, payload):
    t = time.perf_counter()
    Pool(k).map(lambda i: c.echo(payload), range(n))
    return n / (time.perf_counter() - t)
r16 = rate(16, n_conc, 1)
r256 = rate(256, n_conc, 1)
r64k = rate(16, max(n_conc // 10, 1), b"\x07" * 65536)
t = time.perf_counter()
n = sum(1 for _ in c.range(n_stream))
items = n / (time.perf_counter() - t)
qs = [0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999]
pcts = [lat[min(int(len(lat) * q), len(lat) - 1)] * 1e6 for q in qs]
print("RESULT", json.dumps({"p50_us": lat[len(lat)//2] * 1e6, "p99_us": lat[int(len(lat) * 0.99)] * 1e6,
      "rate16": r16, "rate256": r256, "rate64k": r64k, "items": items, "pcts": pcts}), flush=True)
"#;

pub(crate) fn python_client(name: &str, ep: &str, s: Size) -> Row {
    let mut p = common::Proc::python(
        PY_CLIENT,
        &[
            ep,
            &s.py_seq.to_string(),
            &s.py_conc.to_string(),
            &s.py_stream.to_string(),
        ],
    );
    let line = p.wait_line("RESULT");
    let j: serde_json::Value =
        serde_json::from_str(line.trim_start_matches("RESULT").trim()).expect("python result json");
    let f = |k: &str| j[k].as_f64();
    Row {
        name: name.into(),
        p50_us: f("p50_us"),
        p99_us: f("p99_us"),
        rate16: f("rate16"),
        rate256: f("rate256"),
        rate64k: f("rate64k"),
        items: f("items"),
        pcts: j["pcts"]
            .as_array()
            .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect())
            .unwrap_or_default(),
        idle: None,
    }
}
