//! Status codes, the thread's last error message, and the guard every exported function runs
//! its body in (errors and panics become a status and a message).

use std::cell::RefCell;
use std::ffi::{CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// What a call returned. Anything but `ENCORE_STATUS_OK` leaves a message for
/// [`encore_last_error`].
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncoreStatus {
    /// The call did what it says.
    Ok = 0,
    /// A required pointer was `NULL`.
    NullArgument = 1,
    /// An argument is out of its range: an unknown action/surface/device code, a country that
    /// is not UTF-8, an output buffer too small, too many events.
    InvalidArgument = 2,
    /// The bytes are not a bundle this library can load (truncated, corrupted, another
    /// version, over the decoded-size limit).
    InvalidBundle = 3,
    /// The reranker refused the request: an empty history, an unknown item, events out of
    /// order, too many candidates…
    Refused = 4,
    /// A bug in Encore (a panic, caught at the boundary). The objects involved may be freed but
    /// should not be used again.
    Internal = 5,
}

/// A failed call: its status and the message [`encore_last_error`] returns.
#[derive(Debug)]
pub struct Failure {
    /// The status returned.
    pub status: EncoreStatus,
    /// What went wrong, and where.
    pub message: String,
}

impl Failure {
    /// A failure with `status` and `message`.
    pub fn new(status: EncoreStatus, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// A required pointer (named `what`) was `NULL`.
    pub fn null(what: &str) -> Self {
        Self::new(EncoreStatus::NullArgument, format!("{what} is NULL"))
    }

    /// An argument out of range.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(EncoreStatus::InvalidArgument, message)
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    // A message cannot hold NUL bytes in C; none of ours do, but a panic payload might.
    let text = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = text);
}

/// The message of the last failed call on this thread (`""` if none failed yet). The string
/// belongs to the library and stays valid until the next failing call on this thread; copy it
/// to keep it.
#[unsafe(no_mangle)]
pub extern "C" fn encore_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// Runs an exported function's body: `Ok` becomes [`EncoreStatus::Ok`], a failure its status
/// (with its message stored for [`encore_last_error`]), a panic [`EncoreStatus::Internal`].
pub fn guard(body: impl FnOnce() -> Result<(), Failure>) -> EncoreStatus {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => EncoreStatus::Ok,
        Ok(Err(failure)) => {
            set_last_error(&failure.message);
            failure.status
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            set_last_error(&format!(
                "internal error in Encore (please report it): {what}"
            ));
            EncoreStatus::Internal
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn last_error() -> String {
        unsafe { CStr::from_ptr(encore_last_error()) }
            .to_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn a_failure_and_a_panic_become_a_status_and_a_message() {
        assert_eq!(guard(|| Ok(())), EncoreStatus::Ok);
        assert_eq!(
            guard(|| Err(Failure::invalid("surface code 9"))),
            EncoreStatus::InvalidArgument
        );
        assert_eq!(last_error(), "surface code 9");
        // Success leaves the last failure's message in place.
        assert_eq!(guard(|| Ok(())), EncoreStatus::Ok);
        assert_eq!(last_error(), "surface code 9");
        assert_eq!(
            guard(|| panic!("index {} out of range", 7)),
            EncoreStatus::Internal
        );
        assert_eq!(
            last_error(),
            "internal error in Encore (please report it): index 7 out of range"
        );
        assert_eq!(
            guard(|| Err(Failure::new(EncoreStatus::Refused, "a\0b"))),
            EncoreStatus::Refused
        );
        assert_eq!(last_error(), "a\\0b");
        // Each thread has its own message.
        std::thread::spawn(|| assert_eq!(last_error(), ""))
            .join()
            .unwrap();
    }
}
