"""Throwaway certificates for TLS tests, made at test time with Debian's
openssl command: a CA, a server certificate for localhost and 127.0.0.1, and
client certificates (for mutual TLS) signed by that CA or by another one.

    pki = Pki(directory)
    pki.server            # Cert(cert=..., key=...) for localhost / 127.0.0.1
    pki.client("acme")    # a client certificate with CN=acme
    pki.ca_cert           # the CA's certificate (what clients and the server trust)
    pki.other_client("x") # a client certificate from a CA nobody trusts
"""
import collections
import os
import subprocess

Cert = collections.namedtuple("Cert", "cert key")


def _openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True)


class Pki:
    def __init__(self, directory):
        self.dir = os.path.join(directory, "pki")
        os.makedirs(self.dir, exist_ok=True)
        self.ca = self._ca("ca", "docq test CA")
        self.other_ca = self._ca("other-ca", "some other CA")
        self.ca_cert = self.ca.cert
        self.server = self._leaf(self.ca, "server", "/CN=localhost",
                                 "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
        self._clients = {}

    def _key(self, name):
        path = os.path.join(self.dir, name + ".key")
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path,
                 cwd=self.dir)
        return path

    def _ca(self, name, cn):
        key = self._key(name)
        cert = os.path.join(self.dir, name + ".crt")
        _openssl("req", "-x509", "-new", "-key", key, "-out", cert, "-days", "2", "-subj", "/CN=" + cn,
                 "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
                 cwd=self.dir)
        return Cert(cert, key)

    def _leaf(self, ca, name, subject, extensions):
        key = self._key(name)
        csr = os.path.join(self.dir, name + ".csr")
        cert = os.path.join(self.dir, name + ".crt")
        ext = os.path.join(self.dir, name + ".ext")
        with open(ext, "w") as f:
            f.write(extensions)
        _openssl("req", "-new", "-key", key, "-out", csr, "-subj", subject, cwd=self.dir)
        _openssl("x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-CAcreateserial",
                 "-out", cert, "-days", "2", "-extfile", ext, cwd=self.dir)
        return Cert(cert, key)

    def client(self, cn, subject=None):
        """A client certificate signed by the CA, with CN=cn (or the whole
        subject given, e.g. "/O=acme/OU=ops" for one without a CN)."""
        name = "client-" + "".join(c if c.isalnum() else "_" for c in (subject or cn))
        if name not in self._clients:
            self._clients[name] = self._leaf(self.ca, name, subject or "/CN=" + cn,
                                             "extendedKeyUsage=clientAuth\n")
        return self._clients[name]

    def other_client(self, cn):
        """A client certificate with CN=cn signed by a CA the server does not trust."""
        return self._leaf(self.other_ca, "stranger-" + cn, "/CN=" + cn, "extendedKeyUsage=clientAuth\n")

    @staticmethod
    def read(path):
        with open(path, "rb") as f:
            return f.read()
