//! Password files (`--password-file`, `user create|passwd --password-file`):
//! the password is the file's first line, without its line ending, read the
//! way the broker reads `--bootstrap-admin-password-file`.

use std::io::Read;
use std::path::Path;

use crate::error::CliError;

/// Longest password file read: anything larger is not a password file.
pub const PASSWORD_FILE_BYTES_LIMIT: u64 = 4096;

/// The password in `path`: its first line, which must not be empty.
pub fn read_password_file(path: &Path) -> Result<String, CliError> {
    let refused = |reason: String| CliError::PasswordFile {
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| refused(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(PASSWORD_FILE_BYTES_LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| refused(e.to_string()))?;
    if bytes.len() as u64 > PASSWORD_FILE_BYTES_LIMIT {
        return Err(refused(format!(
            "over {PASSWORD_FILE_BYTES_LIMIT} bytes: not a password file"
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| refused("not UTF-8 text".into()))?;
    first_line(&text).ok_or_else(|| refused("the first line (the password) is empty".into()))
}

/// The first line of `text` without its `\n` or `\r\n`, if not empty.
fn first_line(text: &str) -> Option<String> {
    text.lines()
        .next()
        .filter(|line| !line.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_the_first_line_without_its_ending() {
        assert_eq!(first_line("s3cret\n").as_deref(), Some("s3cret"));
        assert_eq!(first_line("s3cret\r\nignored\n").as_deref(), Some("s3cret"));
        assert_eq!(first_line(" spaced out ").as_deref(), Some(" spaced out "));
        assert_eq!(first_line("\nsecond"), None);
        assert_eq!(first_line(""), None);
    }

    #[test]
    fn missing_and_oversized_files_are_refused() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        let big = dir.join("big");
        std::fs::write(&big, vec![b'x'; PASSWORD_FILE_BYTES_LIMIT as usize + 1]).unwrap();
        assert!(matches!(
            read_password_file(&big),
            Err(CliError::PasswordFile { .. })
        ));
        let good = dir.join("good");
        std::fs::write(&good, "pw\n").unwrap();
        assert_eq!(read_password_file(&good).ok().as_deref(), Some("pw"));
        assert!(read_password_file(&dir.join("missing")).is_err());
    }
}
