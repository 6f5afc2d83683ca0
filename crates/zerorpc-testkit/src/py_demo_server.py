# The Python demo server the interop tests run: python py_demo_server.py ENDPOINT HEARTBEAT
import sys, gevent, zerorpc

class PyDemo(object):
    def echo(self, x):
        "Return x."
        return x
    def add(self, a, b):
        "Add a and b."
        return a + b
    @zerorpc.stream
    def range(self, n):
        "Stream 0..n-1."
        return iter(range(n))
    def slow(self, seconds):
        gevent.sleep(seconds)
        return seconds
    def fail(self, message):
        raise ValueError(message)
    def types(self):
        return {"str": type(self).__name__, "bytes": b"\x00\xff", "int": -7, "float": 2.5,
                "list": [1, "a"], "nil": None, "true": True}

s = zerorpc.Server(PyDemo(), heartbeat=float(sys.argv[2]))
s.bind(sys.argv[1])
print("READY", flush=True)
s.run()
