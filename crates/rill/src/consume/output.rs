//! Where `rill consume` writes and when it stops: flushing stdout, a reader that went away.

/// Flushes stdout: `Some(())` when done, `None` when the reader went away.
pub(super) fn flush(out: &mut impl std::io::Write) -> anyhow::Result<Option<()>> {
    match out.flush() {
        Ok(()) => Ok(Some(())),
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(None),
        Err(err) => Err(anyhow::Error::new(err).context("writing to stdout")),
    }
}

pub(super) fn quiet_if_broken_pipe(err: std::io::Error) -> anyhow::Result<()> {
    if err.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(anyhow::Error::new(err).context("writing to stdout"))
    }
}

/// Resolves once stdout is a pipe whose reader has gone away, so that an idle consumer
/// piped into `head` ends too instead of waiting for a record to fail to write. Never for a
/// terminal or a file.
#[allow(unsafe_code)]
pub(super) async fn stdout_closed() {
    use tokio::io::Interest;
    // SAFETY: the registered fd is the process's stdout (fd 1), which nothing in this program
    // closes, so it stays open and the same file for as long as the `AsyncFd` lives.
    let registered = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(std::io::stdout(), Interest::ERROR)
    };
    match registered {
        Ok(fd) => {
            if fd.ready(Interest::ERROR).await.is_ok() {
                return;
            }
            std::future::pending::<()>().await;
        }
        // A regular file cannot be watched (and never closes under us).
        Err(_) => std::future::pending::<()>().await,
    }
}
