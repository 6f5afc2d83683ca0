# Writes the fuzz targets' fixed test PKI into this directory (the
# `bus_signature` target embeds it): a CA, `alice` and `bob` (PKCS#1 keys),
# `mallory` (PKCS#8, revoked by the CRL), `old` (expired in 2021), `eve`
# (issued by another CA, common name `alice`), and `crl.pem`. Test keys
# only: 1024-bit RSA (the smallest the `rsa` crate loads, so signing in the
# target stays cheap), fixed serials, validity 2020-2100 (the target
# validates at 2030-01-01). Needs Python's `cryptography`:
#   python3 crates/zerorpc-fuzz/pki/make_pki.py crates/zerorpc-fuzz/pki
# The keys come out new each time: run the seeds example again after
# (cargo run -p zerorpc-fuzz --example seeds; the signed seeds use them).
import datetime, sys
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

d = sys.argv[1]
utc = datetime.timezone.utc
start = datetime.datetime(2020, 1, 1, tzinfo=utc)
end = datetime.datetime(2100, 1, 1, tzinfo=utc)

def key():
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)

def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, u"zerorpc fuzz"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])

def write(path, data):
    with open(d + "/" + path, "wb") as f:
        f.write(data)

def make_ca(cn, serial):
    k = key()
    cert = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(name(cn))
            .public_key(k.public_key()).serial_number(serial)
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
                critical=True)
            .sign(k, hashes.SHA256()))
    return k, cert

def issue(ca_key, ca_cert, cn, serial, before=start, after=end):
    k = key()
    cert = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca_cert.subject)
            .public_key(k.public_key()).serial_number(serial)
            .not_valid_before(before).not_valid_after(after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    return k, cert

def save(fname, k, cert, fmt):
    write(fname + ".crt", cert.public_bytes(serialization.Encoding.PEM))
    write(fname + ".key", k.private_bytes(serialization.Encoding.PEM, fmt,
                                          serialization.NoEncryption()))

pkcs1 = serialization.PrivateFormat.TraditionalOpenSSL
pkcs8 = serialization.PrivateFormat.PKCS8
ca_key, ca = make_ca(u"zerorpc fuzz CA", 1)
other_key, other = make_ca(u"zerorpc fuzz other CA", 2)
write("ca.crt", ca.public_bytes(serialization.Encoding.PEM))
for cn, serial in [(u"alice", 10), (u"bob", 11)]:
    k, c = issue(ca_key, ca, cn, serial)
    save(cn, k, c, pkcs1)
k, mallory = issue(ca_key, ca, u"mallory", 12)
save("mallory", k, mallory, pkcs8)
k, c = issue(ca_key, ca, u"old", 13, after=datetime.datetime(2021, 1, 1, tzinfo=utc))
save("old", k, c, pkcs1)
k, c = issue(other_key, other, u"alice", 14)
save("eve", k, c, pkcs1)
b = (x509.CertificateRevocationListBuilder().issuer_name(ca.subject)
     .last_update(start).next_update(datetime.datetime(2099, 1, 1, tzinfo=utc)))
b = b.add_revoked_certificate(x509.RevokedCertificateBuilder()
    .serial_number(mallory.serial_number).revocation_date(start).build())
write("crl.pem", b.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
