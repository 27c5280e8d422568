//! The inputs of a rerank as C passes them: a history as parallel arrays, a request, and the
//! code constants of actions, surfaces and devices.

use std::ffi::{CStr, c_char};

use encore_core::{Action, DeviceType, Event, RerankRequest, Surface};

use crate::status::Failure;

/// Action code: the member played the title.
pub const ENCORE_ACTION_PLAY: u8 = 0;
/// Action code: the member watched its trailer.
pub const ENCORE_ACTION_TRAILER: u8 = 1;
/// Action code: the member added it to their list.
pub const ENCORE_ACTION_ADD_TO_LIST: u8 = 2;

/// Surface code: the home page rows.
pub const ENCORE_SURFACE_HOME: u8 = 0;
/// Surface code: search results.
pub const ENCORE_SURFACE_SEARCH: u8 = 1;
/// Surface code: the kids profile.
pub const ENCORE_SURFACE_KIDS: u8 = 2;
/// Surface code: the mobile feed.
pub const ENCORE_SURFACE_MOBILE_FEED: u8 = 3;

/// Device code: a TV.
pub const ENCORE_DEVICE_TV: u8 = 0;
/// Device code: a phone.
pub const ENCORE_DEVICE_MOBILE: u8 = 1;
/// Device code: a web browser.
pub const ENCORE_DEVICE_WEB: u8 = 2;
/// Device code: a tablet.
pub const ENCORE_DEVICE_TABLET: u8 = 3;
/// [`EncoreRequest::device`]: the last history event's device.
pub const ENCORE_DEVICE_FROM_HISTORY: u8 = 255;

/// [`EncoreRequest::timestamp`]: the last history event's time.
pub const ENCORE_TIME_FROM_HISTORY: i64 = i64::MIN;

/// The most events one call takes (a history or an append); more is refused before anything
/// is copied.
pub const ENCORE_MAX_EVENTS: usize = 1 << 20;

/// A member's events, oldest first, as parallel arrays of `len` entries. `items` and
/// `timestamps` are required (when `len > 0`); any other array may be `NULL` for its default.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EncoreHistory {
    /// Number of events.
    pub len: usize,
    /// Item ids, as in the bundle's catalog.
    pub items: *const u32,
    /// Unix times in seconds (UTC), not decreasing.
    pub timestamps: *const i64,
    /// `ENCORE_ACTION_*` codes (`NULL`: every event a play).
    pub actions: *const u8,
    /// Seconds watched (`NULL`: 0).
    pub durations: *const f32,
    /// `ENCORE_SURFACE_*` codes (`NULL`: home).
    pub surfaces: *const u8,
    /// `ENCORE_DEVICE_*` codes (`NULL`: web).
    pub devices: *const u8,
    /// ISO 3166 alpha-2 country codes, NUL-terminated (`NULL`, or a `NULL` entry: unknown).
    pub countries: *const *const c_char,
}

/// The context of a request. A `NULL` request is the home surface with everything else taken
/// from the last history event.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EncoreRequest {
    /// `ENCORE_SURFACE_*` code of the surface the candidates will be shown on.
    pub surface: u8,
    /// `ENCORE_DEVICE_*` code, or `ENCORE_DEVICE_FROM_HISTORY`.
    pub device: u8,
    /// Unix time (s) of the request, or `ENCORE_TIME_FROM_HISTORY`.
    pub timestamp: i64,
    /// ISO country code, NUL-terminated (`NULL`: the last event's).
    pub country: *const c_char,
    /// The name of the bundle's prompt set to steer the model with, NUL-terminated UTF-8
    /// (`NULL`: none); a name the bundle has no prompt set for is refused.
    pub prompt: *const c_char,
}

/// `len` values at `ptr` (named `what` in errors): `NULL` is refused unless `len` is 0.
///
/// # Safety
/// A non-null `ptr` must point at `len` readable values that outlive the call.
pub unsafe fn slice<'a, T>(ptr: *const T, len: usize, what: &str) -> Result<&'a [T], Failure> {
    if len == 0 {
        Ok(&[])
    } else if ptr.is_null() {
        Err(Failure::null(what))
    } else {
        // SAFETY: the caller's contract.
        Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
    }
}

/// An optional array: `None` for `NULL`.
unsafe fn optional<'a, T>(ptr: *const T, len: usize) -> Option<&'a [T]> {
    // SAFETY: the caller's contract (see `EncoreHistory`).
    (!ptr.is_null()).then(|| unsafe { std::slice::from_raw_parts(ptr, len) })
}

fn code<T: Copy>(all: &[T], code: u8, what: &str, at: impl Fn() -> String) -> Result<T, Failure> {
    all.get(usize::from(code)).copied().ok_or_else(|| {
        Failure::invalid(format!(
            "{}: {what} code {code} is not one of 0..{}",
            at(),
            all.len() - 1
        ))
    })
}

/// A NUL-terminated UTF-8 string (named by `at` in errors).
///
/// # Safety
/// A non-null `ptr` must point at a NUL-terminated string.
pub(crate) unsafe fn text(
    ptr: *const c_char,
    at: impl Fn() -> String,
) -> Result<Option<String>, Failure> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: the caller's contract.
    let s = unsafe { CStr::from_ptr(ptr) };
    s.to_str()
        .map(|s| Some(s.to_string()))
        .map_err(|_| Failure::invalid(format!("{}: not UTF-8", at())))
}

impl EncoreHistory {
    /// The events (`member` 0), each field checked: codes in range, strings UTF-8. Times and
    /// order are the reranker's to check.
    ///
    /// # Safety
    /// Every non-null array must hold `len` entries; every non-null country a NUL-terminated
    /// string.
    pub unsafe fn events(&self, what: &str) -> Result<Vec<Event>, Failure> {
        if self.len > ENCORE_MAX_EVENTS {
            return Err(Failure::invalid(format!(
                "{what}: {} events; at most {ENCORE_MAX_EVENTS} per call",
                self.len
            )));
        }
        // SAFETY (all below): the caller's contract.
        let items = unsafe { slice(self.items, self.len, &format!("{what}.items"))? };
        let times = unsafe { slice(self.timestamps, self.len, &format!("{what}.timestamps"))? };
        let actions = unsafe { optional(self.actions, self.len) };
        let durations = unsafe { optional(self.durations, self.len) };
        let surfaces = unsafe { optional(self.surfaces, self.len) };
        let devices = unsafe { optional(self.devices, self.len) };
        let countries = unsafe { optional(self.countries, self.len) };
        let mut events = Vec::with_capacity(self.len);
        for i in 0..self.len {
            let at = || format!("{what} event {i}");
            let mut e = Event::implicit(0, items[i], times[i]);
            if let Some(a) = actions {
                e.action = code(&Action::ALL, a[i], "action", at)?;
            }
            if let Some(d) = durations {
                e.duration_s = d[i];
            }
            if let Some(s) = surfaces {
                e.surface = code(&Surface::ALL, s[i], "surface", at)?;
            }
            if let Some(d) = devices {
                e.device = code(&DeviceType::ALL, d[i], "device", at)?;
            }
            if let Some(c) = countries
                && let Some(country) = unsafe { text(c[i], || format!("{} country", at()))? }
            {
                e.country = country;
            }
            events.push(e);
        }
        Ok(events)
    }
}

impl EncoreRequest {
    /// The request, codes checked.
    ///
    /// # Safety
    /// Non-null `country` and `prompt` must be NUL-terminated strings.
    pub unsafe fn request(&self) -> Result<RerankRequest, Failure> {
        let at = || "request".to_string();
        Ok(RerankRequest {
            surface: code(&Surface::ALL, self.surface, "surface", at)?,
            timestamp: (self.timestamp != ENCORE_TIME_FROM_HISTORY).then_some(self.timestamp),
            device: match self.device {
                ENCORE_DEVICE_FROM_HISTORY => None,
                d => Some(code(&DeviceType::ALL, d, "device", at)?),
            },
            // SAFETY: the caller's contract.
            country: unsafe { text(self.country, || "request country".into())? },
            // SAFETY: the caller's contract.
            prompt: unsafe { text(self.prompt, || "request prompt".into())? },
        })
    }
}

/// The request behind `ptr` (`NULL`: home, the rest from the history).
///
/// # Safety
/// A non-null `ptr` must point at a valid [`EncoreRequest`].
pub unsafe fn request_or_default(ptr: *const EncoreRequest) -> Result<RerankRequest, Failure> {
    // SAFETY: the caller's contract.
    match unsafe { ptr.as_ref() } {
        None => Ok(RerankRequest::on(Surface::Home)),
        Some(r) => unsafe { r.request() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_codes_are_the_index_of_each_value_in_its_list() {
        for (code, action) in [
            (ENCORE_ACTION_PLAY, Action::Play),
            (ENCORE_ACTION_TRAILER, Action::Trailer),
            (ENCORE_ACTION_ADD_TO_LIST, Action::AddToList),
        ] {
            assert_eq!(Action::ALL[usize::from(code)], action);
        }
        for (code, surface) in [
            (ENCORE_SURFACE_HOME, Surface::Home),
            (ENCORE_SURFACE_SEARCH, Surface::Search),
            (ENCORE_SURFACE_KIDS, Surface::Kids),
            (ENCORE_SURFACE_MOBILE_FEED, Surface::MobileFeed),
        ] {
            assert_eq!(Surface::ALL[usize::from(code)], surface);
        }
        for (code, device) in [
            (ENCORE_DEVICE_TV, DeviceType::Tv),
            (ENCORE_DEVICE_MOBILE, DeviceType::Mobile),
            (ENCORE_DEVICE_WEB, DeviceType::Web),
            (ENCORE_DEVICE_TABLET, DeviceType::Tablet),
        ] {
            assert_eq!(DeviceType::ALL[usize::from(code)], device);
        }
        assert!(usize::from(ENCORE_DEVICE_FROM_HISTORY) >= DeviceType::ALL.len());
    }

    #[test]
    fn a_history_reads_its_columns_and_refuses_bad_codes_by_event() {
        let items = [5u32, 6, 7];
        let times = [10i64, 20, 30];
        let surfaces = [0u8, 2, 1];
        let france = c"FR";
        let countries = [std::ptr::null(), france.as_ptr(), std::ptr::null()];
        let mut h = EncoreHistory {
            len: 3,
            items: items.as_ptr(),
            timestamps: times.as_ptr(),
            actions: std::ptr::null(),
            durations: std::ptr::null(),
            surfaces: surfaces.as_ptr(),
            devices: std::ptr::null(),
            countries: countries.as_ptr(),
        };
        let events = unsafe { h.events("history") }.unwrap();
        assert_eq!(events.iter().map(|e| e.item).collect::<Vec<_>>(), items);
        assert_eq!(
            events.iter().map(|e| e.timestamp).collect::<Vec<_>>(),
            times
        );
        assert_eq!(
            events.iter().map(|e| e.surface).collect::<Vec<_>>(),
            [Surface::Home, Surface::Kids, Surface::Search]
        );
        assert_eq!(
            events
                .iter()
                .map(|e| e.country.as_str())
                .collect::<Vec<_>>(),
            ["??", "FR", "??"]
        );
        assert!(
            events
                .iter()
                .all(|e| e.action == Action::Play && e.device == DeviceType::Web)
        );

        let bad = [0u8, 9, 0];
        h.devices = bad.as_ptr();
        let err = unsafe { h.events("history") }.unwrap_err();
        assert_eq!(err.status, crate::EncoreStatus::InvalidArgument);
        assert_eq!(
            err.message,
            "history event 1: device code 9 is not one of 0..3"
        );

        h.devices = std::ptr::null();
        h.timestamps = std::ptr::null();
        let err = unsafe { h.events("history") }.unwrap_err();
        assert_eq!(
            (err.status, err.message.as_str()),
            (
                crate::EncoreStatus::NullArgument,
                "history.timestamps is NULL"
            )
        );
        h.len = ENCORE_MAX_EVENTS + 1;
        let err = unsafe { h.events("history") }.unwrap_err();
        assert_eq!(err.status, crate::EncoreStatus::InvalidArgument);
        // An empty history needs no arrays at all.
        let empty = EncoreHistory {
            len: 0,
            items: std::ptr::null(),
            ..h
        };
        assert!(unsafe { empty.events("history") }.unwrap().is_empty());
    }
}
