# Writes a test PKI into argv[1]: a CA, `alice` and `bob` (PKCS#1 keys),
# `mallory` (PKCS#8, revoked by crl.pem), `old` (expired), `eve` (issued by
# another CA, common name `alice`), crl.pem, and the other CA's certificate
# (otherca.crt) and empty CRL (othercrl.pem). Test keys only.
#
# Default (the bus tests: PY_MAKE_PKI in fedmsg_crypto.rs): 2048-bit keys,
# random serials, valid from yesterday for 30 days.
#
# `--fixed` (the fuzz targets' PKI, crates/zerorpc-fuzz/pki, which the
# `bus_signature` target embeds and validates at 2030-01-01): 1024-bit keys
# (the smallest the `rsa` crate loads, so signing stays cheap), fixed
# serials, valid 2020-2100, `old` expired in 2021:
#   python3 crates/zerorpc-bus/tests/py/make_pki.py crates/zerorpc-fuzz/pki --fixed
# The keys come out new each time: run the fuzz seeds example again after
# (cargo run -p zerorpc-fuzz --example seeds; the signed seeds use them).
# Needs Python's `cryptography`.
import datetime, sys
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

d = sys.argv[1]
fixed = "--fixed" in sys.argv[2:]
utc = datetime.timezone.utc
day = datetime.timedelta(days=1)
if fixed:
    start = datetime.datetime(2020, 1, 1, tzinfo=utc)
    end = datetime.datetime(2100, 1, 1, tzinfo=utc)
    expired = datetime.datetime(2021, 1, 1, tzinfo=utc)
    crl_next = datetime.datetime(2099, 1, 1, tzinfo=utc)
    old_from = start
    bits, org = 1024, u"zerorpc fuzz"
else:
    now = datetime.datetime.now(utc)
    start, end, expired, crl_next = now - day, now + 30 * day, now - day, now + 7 * day
    old_from = now - 30 * day
    bits, org = 2048, u"zerorpc test"
serials = iter(range(1, 100))

def serial():
    return next(serials) if fixed else x509.random_serial_number()

def key():
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)

def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])

def write(path, data):
    with open(d + "/" + path, "wb") as f:
        f.write(data)

def make_ca(cn):
    k = key()
    cert = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(name(cn))
            .public_key(k.public_key()).serial_number(serial())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
                critical=True)
            .sign(k, hashes.SHA256()))
    return k, cert

def issue(ca_key, ca_cert, cn, before=None, after=None):
    k = key()
    cert = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca_cert.subject)
            .public_key(k.public_key()).serial_number(serial())
            .not_valid_before(before or start).not_valid_after(after or end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    return k, cert

def save(fname, k, cert, fmt):
    write(fname + ".crt", cert.public_bytes(serialization.Encoding.PEM))
    write(fname + ".key", k.private_bytes(serialization.Encoding.PEM, fmt,
                                          serialization.NoEncryption()))

def crl(ca_key, ca_cert, revoked):
    b = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject)
         .last_update(start).next_update(crl_next))
    for s in revoked:
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder()
            .serial_number(s).revocation_date(start).build())
    return b.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

pkcs1 = serialization.PrivateFormat.TraditionalOpenSSL
pkcs8 = serialization.PrivateFormat.PKCS8
ca_key, ca = make_ca(org + u" CA")
other_key, other = make_ca(org + u" other CA")
write("ca.crt", ca.public_bytes(serialization.Encoding.PEM))
write("otherca.crt", other.public_bytes(serialization.Encoding.PEM))
for cn in [u"alice", u"bob"]:
    k, c = issue(ca_key, ca, cn)
    save(cn, k, c, pkcs1)
k, mallory = issue(ca_key, ca, u"mallory")
save("mallory", k, mallory, pkcs8)
k, c = issue(ca_key, ca, u"old", before=old_from, after=expired)
save("old", k, c, pkcs1)
k, c = issue(other_key, other, u"alice")
save("eve", k, c, pkcs1)
write("crl.pem", crl(ca_key, ca, [mallory.serial_number]))
write("othercrl.pem", crl(other_key, other, []))
print("ALL DONE")
