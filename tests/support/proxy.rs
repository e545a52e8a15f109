//! A TCP proxy on loopback in front of a test server, to break connections
//! the way networks and restarts do: cut after so many bytes from the
//! server, or cut everything now and refuse new connections for a while.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

#[derive(Default)]
struct Shared {
    /// Cut a connection once it has carried this many bytes from the server
    /// (0: never). Applies to the next connection only, then resets.
    cut_after: AtomicU64,
    /// Refuse (accept and close at once) new connections.
    refusing: AtomicBool,
    /// Every open stream, to cut them all.
    open: Mutex<Vec<TcpStream>>,
    /// Connections accepted so far.
    accepted: AtomicU64,
    /// Everything clients sent (the commands, with tls = "none").
    sent: Mutex<Vec<u8>>,
}

pub struct Proxy {
    pub port: u16,
    shared: Arc<Shared>,
}

impl Proxy {
    /// Listen on a free loopback port, forwarding to 127.0.0.1:`upstream`.
    pub fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                s.accepted.fetch_add(1, Ordering::SeqCst);
                if s.refusing.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let cut = s.cut_after.swap(0, Ordering::SeqCst);
                {
                    let mut open = s.open.lock().unwrap();
                    open.push(client.try_clone().unwrap());
                    open.push(server.try_clone().unwrap());
                }
                pipe(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    0,
                    Some(s.clone()),
                );
                pipe(server, client, cut, None);
            }
        });
        Proxy { port, shared }
    }

    /// The next connection is cut after `bytes` bytes from the server.
    pub fn cut_next_after(&self, bytes: u64) {
        self.shared.cut_after.store(bytes, Ordering::SeqCst);
    }

    /// Cut every open connection now.
    pub fn cut_all(&self) {
        for s in self.shared.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Refuse new connections (true) or forward them again (false).
    pub fn refuse(&self, on: bool) {
        self.shared.refusing.store(on, Ordering::SeqCst);
    }

    /// The command lines clients sent that contain `needle` (case-insensitive).
    pub fn commands_with(&self, needle: &str) -> usize {
        let sent = self.shared.sent.lock().unwrap();
        String::from_utf8_lossy(&sent)
            .lines()
            .filter(|l| {
                l.to_ascii_uppercase()
                    .contains(&needle.to_ascii_uppercase())
            })
            .count()
    }

    /// Connections accepted so far (refused ones included).
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

/// Copy `from` → `to` in a thread; with `cut` > 0, close both after that
/// many bytes; with `keep`, append what passes to its `sent`.
fn pipe(mut from: TcpStream, mut to: TcpStream, cut: u64, keep: Option<Arc<Shared>>) {
    thread::spawn(move || {
        let mut buf = [0u8; 16 << 10];
        let mut sent = 0u64;
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let n = if cut > 0 {
                n.min((cut - sent) as usize)
            } else {
                n
            };
            if let Some(k) = &keep {
                k.sent.lock().unwrap().extend_from_slice(&buf[..n]);
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
            sent += n as u64;
            if cut > 0 && sent >= cut {
                break;
            }
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
}
