//! A real Docker engine per lab host (`weft lab docker`), driven as a user would, and raw calls
//! to a host's plugin socket as Docker makes them. The lab's `down` (on drop) stops the engines,
//! their containers and removes their data.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Output;

use super::{out_text, Lab};

impl Lab {
    pub fn docker_start(&self, host: &str) {
        let o = self.lab(&["docker", "start", host]);
        assert!(o.status.success(), "docker start {host}:\n{}", out_text(&o));
    }

    /// `docker ARGS` against a host's engine.
    pub fn docker(&self, host: &str, args: &[&str]) -> Output {
        let mut a = vec!["docker", "cli", host, "--"];
        a.extend_from_slice(args);
        self.lab(&a)
    }

    pub fn docker_ok(&self, host: &str, args: &[&str]) -> String {
        let o = self.docker(host, args);
        assert!(
            o.status.success(),
            "docker {args:?} on {host}:\n{}",
            out_text(&o)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// A container's addresses on a Docker network: (IPv4, IPv6, MAC).
    pub fn docker_addrs(
        &self,
        host: &str,
        container: &str,
        network: &str,
    ) -> (String, String, String) {
        let f = format!(
            "{{{{with index .NetworkSettings.Networks \"{network}\"}}}}{{{{.IPAddress}}}} {{{{.GlobalIPv6Address}}}} {{{{.MacAddress}}}}{{{{end}}}}"
        );
        let out = self.docker_ok(host, &["inspect", "-f", &f, container]);
        let v: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(v.len(), 3, "addresses of {container}: {out:?}");
        (v[0].into(), v[1].into(), v[2].into())
    }

    pub fn plugin_socket(&self, host: &str) -> String {
        format!(
            "/run/weft/lab/{}/docker/{host}/plugins/weft.sock",
            self.prefix
        )
    }

    /// POSTs `body` to `path` on a host's plugin socket; returns the status and the JSON answer.
    pub fn plugin_call(&self, host: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
        let mut s = UnixStream::connect(self.plugin_socket(host)).expect("plugin socket");
        write!(
            s,
            "POST {path} HTTP/1.0\r\nHost: plugin\r\nContent-Type: application/vnd.docker.plugins.v1.2+json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        let v = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {raw}"));
        (status, v)
    }
}
