# Writes a test PKI into argv[1] (see PY_MAKE_PKI in fedmsg_crypto.rs).
import datetime, sys
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

d = sys.argv[1]
now = datetime.datetime.now(datetime.timezone.utc)
day = datetime.timedelta(days=1)

def key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)

def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, u"zerorpc test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])

def write(path, data):
    with open(d + "/" + path, "wb") as f:
        f.write(data)

def make_ca(cn):
    k = key()
    cert = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(name(cn))
            .public_key(k.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - day).not_valid_after(now + 30 * day)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
                critical=True)
            .sign(k, hashes.SHA256()))
    return k, cert

def issue(ca_key, ca_cert, cn, fmt, before=-1, after=30):
    k = key()
    cert = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca_cert.subject)
            .public_key(k.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now + before * day).not_valid_after(now + after * day)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    return k, cert

def save(fname, k, cert, fmt):
    write(fname + ".crt", cert.public_bytes(serialization.Encoding.PEM))
    write(fname + ".key", k.private_bytes(serialization.Encoding.PEM, fmt,
                                          serialization.NoEncryption()))

def crl(ca_key, ca_cert, revoked):
    b = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject)
         .last_update(now - day).next_update(now + 7 * day))
    for serial in revoked:
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder()
            .serial_number(serial).revocation_date(now - day).build())
    return b.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

pkcs1 = serialization.PrivateFormat.TraditionalOpenSSL
pkcs8 = serialization.PrivateFormat.PKCS8
ca_key, ca = make_ca(u"zerorpc test CA")
other_key, other = make_ca(u"zerorpc other CA")
write("ca.crt", ca.public_bytes(serialization.Encoding.PEM))
write("otherca.crt", other.public_bytes(serialization.Encoding.PEM))
for cn, fmt in [(u"alice", pkcs1), (u"bob", pkcs1)]:
    k, c = issue(ca_key, ca, cn, fmt)
    save(cn, k, c, fmt)
k, mallory = issue(ca_key, ca, u"mallory", pkcs8)
save("mallory", k, mallory, pkcs8)
k, c = issue(ca_key, ca, u"old", pkcs1, before=-30, after=-1)
save("old", k, c, pkcs1)
k, c = issue(other_key, other, u"alice", pkcs1)
save("eve", k, c, pkcs1)
write("crl.pem", crl(ca_key, ca, [mallory.serial_number]))
write("othercrl.pem", crl(other_key, other, []))
print("ALL DONE")
