//! Crash-safe file writes.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` so that a reader sees either the old file or the whole new one:
/// write a temporary file beside it, flush it to disk, then rename it over `path`. After a
/// write succeeds, the temporary files of `path` that killed processes left behind
/// (`.NAME.PID.tmp` of a process no longer running; Linux) are removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    } else {
        remove_stale_temporaries(dir, &name);
    }
    result
}

/// Removes `.{name}.{pid}.tmp` files in `dir` whose process is gone (no `/proc/{pid}`: Linux;
/// elsewhere nothing is removed).
fn remove_stale_temporaries(dir: &Path, name: &str) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let prefix = format!(".{name}.");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(pid) = file
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .and_then(|f| f.strip_suffix(".tmp"))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_removes_the_temporaries_of_dead_processes_only() {
        let dir = std::env::temp_dir().join(format!("encore-atomic-stale-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // PID 0x7fff_fff0 is above Linux's pid_max: no such process.
        let dead = dir.join(format!(".x.bin.{}.tmp", 0x7fff_fff0u32));
        let alive = dir.join(format!(".x.bin.{}.tmp", std::process::id()));
        let other = dir.join(format!(".y.bin.{}.tmp", 0x7fff_fff0u32));
        for f in [&dead, &alive, &other] {
            std::fs::write(f, b"partial").unwrap();
        }
        // (Our own temporary name is reused and replaced by the write itself.)
        std::fs::remove_file(&alive).unwrap();
        let live_other = dir.join(".x.bin.1.tmp"); // PID 1 always runs
        std::fs::write(&live_other, b"partial").unwrap();
        write_atomic(&dir.join("x.bin"), b"whole").unwrap();
        assert_eq!(std::fs::read(dir.join("x.bin")).unwrap(), b"whole");
        assert!(!dead.exists(), "a dead process's temporary was left");
        assert!(
            live_other.exists(),
            "a running process's temporary was removed"
        );
        assert!(other.exists(), "another file's temporary was removed");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn replaces_whole_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("encore-atomic-{}", std::process::id()));
        let p = dir.join("x.bin");
        write_atomic(&p, b"first").unwrap();
        write_atomic(&p, b"second version").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second version");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
