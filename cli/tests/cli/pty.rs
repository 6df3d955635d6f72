//! A pseudo-terminal for the prompt tests, with nothing but libc: the child gets the PTY as
//! stdin, stdout, stderr and controlling terminal (so `/dev/tty` is the PTY); the test reads
//! everything the terminal shows and types into it.

use std::ffi::CStr;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::support::{poll, wait_within};

pub struct Pty {
    master: File,
    pub child: Child,
    screen: Arc<Mutex<Vec<u8>>>,
    reader: Option<thread::JoinHandle<()>>,
    /// How much of the screen `expect` has consumed.
    seen: usize,
}

fn check(rc: libc::c_int, what: &str) {
    assert!(
        rc >= 0,
        "{what} failed: {}",
        std::io::Error::last_os_error()
    );
}

impl Pty {
    /// Spawns `cmd` on a new PTY, as the session leader with the PTY as controlling terminal.
    pub fn spawn(mut cmd: Command) -> Pty {
        // SAFETY: plain libc calls on a descriptor we own; results checked.
        let (master, slave_name) = unsafe {
            let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
            check(fd, "posix_openpt");
            check(libc::grantpt(fd), "grantpt");
            check(libc::unlockpt(fd), "unlockpt");
            let mut name = [0 as libc::c_char; 128];
            check(
                libc::ptsname_r(fd, name.as_mut_ptr(), name.len()),
                "ptsname_r",
            );
            let name = CStr::from_ptr(name.as_ptr())
                .to_str()
                .expect("pts name")
                .to_owned();
            (<File as std::os::fd::FromRawFd>::from_raw_fd(fd), name)
        };
        let slave = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(&slave_name)
            .expect("open pts");
        cmd.stdin(slave.try_clone().expect("dup"))
            .stdout(slave.try_clone().expect("dup"))
            .stderr(slave);
        // SAFETY: setsid and ioctl are async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn on the pty");
        // The Command holds our copies of the slave: drop them, so that the master reads
        // EOF/EIO once the child has gone.
        drop(cmd);
        let screen = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let screen = Arc::clone(&screen);
            let mut master = master.try_clone().expect("dup master");
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                // Ends with EIO when the last slave descriptor closes.
                while let Ok(n) = master.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    screen.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            })
        };
        Pty {
            master,
            child,
            screen,
            reader: Some(reader),
            seen: 0,
        }
    }

    /// Everything the terminal has shown so far.
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.screen.lock().unwrap()).into_owned()
    }

    /// Waits until `text` appears on the screen after what earlier calls consumed.
    #[track_caller]
    pub fn expect(&mut self, text: &str) {
        let seen = self.seen;
        let found = poll(Duration::from_secs(30), || {
            let screen = self.screen.lock().unwrap();
            let tail = String::from_utf8_lossy(&screen[seen.min(screen.len())..]).into_owned();
            tail.find(text).map(|at| seen + at + text.len())
        });
        match found {
            Some(end) => self.seen = end,
            None => panic!(
                "the terminal never showed {text:?}; it shows:\n{}",
                self.screen()
            ),
        }
    }

    /// Whether the terminal echoes what is typed (the slave's termios, read via the master).
    pub fn echo_on(&self) -> bool {
        // SAFETY: tcgetattr fills a termios we own.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            check(
                libc::tcgetattr(self.master.as_raw_fd(), &mut t),
                "tcgetattr",
            );
            t.c_lflag & libc::ECHO != 0
        }
    }

    /// Waits until the program has switched echo off (a no-echo prompt is reading), so that
    /// what is typed next can only be shown by the program itself.
    #[track_caller]
    pub fn wait_echo_off(&self) {
        assert!(
            poll(Duration::from_secs(30), || (!self.echo_on()).then_some(())).is_some(),
            "echo never went off; the terminal shows:\n{}",
            self.screen()
        );
    }

    /// Types `text` followed by Enter.
    pub fn type_line(&mut self, text: &str) {
        self.master
            .write_all(format!("{text}\r").as_bytes())
            .expect("type into the pty");
    }

    /// Waits for the child to exit; then the reader has the whole screen.
    pub fn wait(&mut self) -> ExitStatus {
        let status = wait_within(&mut self.child, Duration::from_secs(60), "pty child");
        if let Some(reader) = self.reader.take() {
            reader.join().expect("pty reader");
        }
        status
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
