//! Putting this twlab on an SSH host for `twlab serve` and `twlab load`:
//! the lab file's own path, checked; else a copy named by its content
//! hash, reused while it is this user's and whole, streamed over the
//! connection otherwise. Apart from `ssh.rs` because it is one task with
//! its own checks, not a part of running commands on the host.

use super::*;

impl SshHost {
    /// Copy `local` to the host unless a same-content copy is there.
    pub(super) async fn install_twlab(&self, local: &Path) -> Result<PathBuf> {
        if let Some(path) = &self.twlab {
            let ok = self
                .run_as_user(&script(CHECK_EXE, "twlab-check", &[path.as_str()]))
                .await?;
            if ok.trim() != "yes" {
                return Err(self.err(format!(
                    "hosts.{}.twlab is {path}, which is not an executable file on that host",
                    self.role.side
                )));
            }
            return Ok(PathBuf::from(path));
        }
        let (hash, size) = {
            let owned = local.to_path_buf();
            tokio::task::spawn_blocking(move || content_hash(&owned))
                .await
                .map_err(|e| Error::env(format!("hashing the twlab binary: {e}")))?
                .map_err(|e| Error::io(local.display(), e))?
        };
        let remote = remote_copy_path(hash);
        let size = size.to_string();
        let check = script(CHECK_COPY, "twlab-check", &[remote.as_str(), size.as_str()]);
        match self.run_as_user(&check).await?.trim() {
            "present" => return Ok(PathBuf::from(remote)),
            "foreign" => {
                return Err(self.err(format!(
                    "{remote} exists on the host but belongs to another user, so it cannot be trusted as this twlab; remove it, or name a twlab in the lab file (hosts.{}.twlab)",
                    self.role.side
                )));
            }
            _ => {}
        }
        self.copy_file(local, &remote).await?;
        if self.run_as_user(&check).await?.trim() != "present" {
            return Err(self.err(format!(
                "copied twlab to {remote}, but the copy is not there as it should be (full disk?)"
            )));
        }
        Ok(PathBuf::from(remote))
    }

    /// Stream `local` into [`COPY`] on the host.
    async fn copy_file(&self, local: &Path, remote: &str) -> Result<()> {
        let what = format!(
            "copying {} to {}:{remote}",
            local.display(),
            self.destination
        );
        let mut file = tokio::fs::File::open(local)
            .await
            .map_err(|e| Error::io(local.display(), e))?;
        let session = self.session()?;
        let mut child = session
            .command("sh")
            .arg("-c")
            .arg(COPY)
            .arg("twlab-copy")
            .arg(remote)
            .stdin(openssh::Stdio::piped())
            .stdout(openssh::Stdio::null())
            .stderr(openssh::Stdio::piped())
            .spawn()
            .await
            .map_err(|e| self.err(format!("{what}: {}", ssh_error_text(&e))))?;
        let copied = match child.stdin().take() {
            Some(mut stdin) => {
                let r = tokio::io::copy(&mut file, &mut stdin).await;
                // Closing stdin is the end of file for `cat`.
                drop(stdin);
                r.map(|_| ())
            }
            None => Err(std::io::Error::other("no stdin")),
        };
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| self.err(format!("{what}: {}", ssh_error_text(&e))))?;
        if !out.status.success() || copied.is_err() {
            let mut stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            if let Err(e) = copied {
                stderr.push_str(&format!("\nwriting to ssh: {e}"));
            }
            return Err(Error::Command(CommandError {
                command: what,
                status: out.status.code(),
                stderr,
            }));
        }
        Ok(())
    }
}
