//! Certificates made in the test with Debian's openssl (never checked in): a CA, a server
//! certificate for 127.0.0.1/localhost in one PEM keystore file (Kafka's PEM keystore), and client
//! certificates it signed, each with the subject a test asks for.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, ensure};

use super::{Broker, Result, free_port};

/// A CA, a server certificate and a client certificate it signed, in a temporary directory.
pub struct Certs {
    dir: tempfile::TempDir,
    pub ca: PathBuf,
    /// The server's key and chain in one PEM file (Kafka's PEM keystore).
    pub server: PathBuf,
    /// The client certificate (subject `O=Rill,CN=client`) and its key.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .context("running openssl")?;
    ensure!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

impl Certs {
    pub fn make() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )?;
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=Rill test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
        )?;
        sign(d, "server", "/CN=localhost", "server.ext")?;
        let mut keystore = std::fs::File::create(d.join("server-keystore.pem"))?;
        for part in ["server.key", "server.pem", "ca.pem"] {
            keystore.write_all(&std::fs::read(d.join(part))?)?;
        }
        let mut certs = Self {
            ca: d.join("ca.pem"),
            server: d.join("server-keystore.pem"),
            client_cert: PathBuf::new(),
            client_key: PathBuf::new(),
            dir,
        };
        (certs.client_cert, certs.client_key) = certs.client("client", "/O=Rill/CN=client")?;
        Ok(certs)
    }

    /// Another client certificate signed by the CA, with `subject` in openssl's `/K=V/...`
    /// form: `(certificate, key)` files named after `name`.
    pub fn client(&self, name: &str, subject: &str) -> Result<(PathBuf, PathBuf)> {
        let d = self.dir.path();
        std::fs::write(d.join("client.ext"), "extendedKeyUsage=clientAuth\n")?;
        sign(d, name, subject, "client.ext")?;
        Ok((d.join(format!("{name}.pem")), d.join(format!("{name}.key"))))
    }

    pub fn path(p: &Path) -> String {
        p.to_string_lossy().into_owned()
    }

    /// A broker with its PLAINTEXT listener and an SSL one on `host` (a free port) serving these
    /// certificates, its truststore the CA; `extra` adds flags. Answers the SSL address.
    pub fn ssl_broker(&self, host: &str, extra: &[&str]) -> Result<(Broker, String)> {
        ssl_broker(&self.server, Some(&self.ca), host, extra)
    }
}

/// A broker with its PLAINTEXT listener and an SSL one on `host` serving `keystore`, with
/// `truststore` if given; `extra` adds flags. Answers the SSL address.
pub fn ssl_broker(
    keystore: &Path,
    truststore: Option<&Path>,
    host: &str,
    extra: &[&str],
) -> Result<(Broker, String)> {
    let ssl = format!("{host}:{}", free_port()?);
    let keystore = Certs::path(keystore);
    let truststore = truststore.map(Certs::path);
    let mut args = vec!["--ssl-listen", &ssl, "--ssl-keystore", &keystore];
    if let Some(truststore) = &truststore {
        args.extend(["--ssl-truststore", truststore]);
    }
    args.extend_from_slice(extra);
    Ok((Broker::start_with(&args)?, ssl))
}

/// Makes `{name}.key` and `{name}.pem`, signed by the CA in `d`, with the extensions in `ext`.
fn sign(d: &Path, name: &str, subject: &str, ext: &str) -> Result<()> {
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    let pem = format!("{name}.pem");
    openssl(
        d,
        &[
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", &key, "-out", &csr,
        ],
    )?;
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            ext,
            "-out",
            &pem,
        ],
    )
}
