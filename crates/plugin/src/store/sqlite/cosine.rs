//! `memory_cosine`: cosine similarity as an SQL function, so a semantic
//! search ranks inside SQLite and only its best rows leave the database.
//!
//! Called as `memory_cosine(embedding, ?query, ?norm)`: `embedding` a stored
//! blob, `?query` the query vector in the same encoding (little-endian
//! `f32`), `?norm` the query's Euclidean norm as a REAL. It gives what
//! [`codec::cosine_of_blobs`] gives, the same `f64`: NULL where that gives
//! `None` (another dimension, or a vector of zeros), so such rows sort last
//! under `ORDER BY … DESC` and are dropped by the caller.
//!
//! Registered on every connection the store opens (as `rank` is), through
//! `sqlite3_create_function_v2` of the SQLite library sqlx links.

use super::codec;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

pub(super) const FUNCTION: &str = "memory_cosine";
const FUNCTION_C: &CStr = c"memory_cosine";

const SQLITE_OK: c_int = 0;
const SQLITE_UTF8: c_int = 1;
const SQLITE_DETERMINISTIC: c_int = 0x800;
const SQLITE_INNOCUOUS: c_int = 0x200000;
const SQLITE_FLOAT: c_int = 2;
const SQLITE_INTEGER: c_int = 1;

type ScalarFunction = unsafe extern "C" fn(ctx: *mut c_void, argc: c_int, argv: *mut *mut c_void);

extern "C" {
    #[allow(clippy::too_many_arguments)]
    fn sqlite3_create_function_v2(
        db: *mut c_void,
        name: *const c_char,
        args: c_int,
        text_rep: c_int,
        app: *mut c_void,
        function: Option<ScalarFunction>,
        step: Option<ScalarFunction>,
        last: Option<unsafe extern "C" fn(*mut c_void)>,
        destroy: Option<unsafe extern "C" fn(*mut c_void)>,
    ) -> c_int;
    fn sqlite3_result_double(ctx: *mut c_void, value: f64);
    fn sqlite3_result_null(ctx: *mut c_void);
    fn sqlite3_result_error(ctx: *mut c_void, message: *const c_char, bytes: c_int);
    fn sqlite3_value_blob(value: *mut c_void) -> *const c_void;
    fn sqlite3_value_bytes(value: *mut c_void) -> c_int;
    fn sqlite3_value_double(value: *mut c_void) -> f64;
    fn sqlite3_value_numeric_type(value: *mut c_void) -> c_int;
}

/// Registers [`FUNCTION`] on the connection `db`.
///
/// # Safety
///
/// `db` must be a valid, open `sqlite3*` that no other thread uses during
/// the call (sqlx's `LockedSqliteHandle` guarantees both).
pub(super) unsafe fn register(db: *mut c_void) -> Result<(), String> {
    let rc = sqlite3_create_function_v2(
        db,
        FUNCTION_C.as_ptr(),
        3,
        SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS,
        ptr::null_mut(),
        Some(cosine),
        None,
        None,
        None,
    );
    if rc != SQLITE_OK {
        return Err(format!(
            "SQLite refused to register {FUNCTION} (error {rc})"
        ));
    }
    Ok(())
}

/// The bytes of a blob argument (empty for NULL or an empty blob).
unsafe fn blob<'a>(value: *mut c_void) -> &'a [u8] {
    let bytes = sqlite3_value_bytes(value);
    let data = sqlite3_value_blob(value);
    if data.is_null() || bytes <= 0 {
        return &[];
    }
    std::slice::from_raw_parts(data.cast::<u8>(), bytes as usize)
}

/// The function itself; a bad call becomes an SQL error, and a panic never
/// crosses into C.
unsafe extern "C" fn cosine(ctx: *mut c_void, argc: c_int, argv: *mut *mut c_void) {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        if argc != 3 {
            return Err("takes (embedding, query, query norm)");
        }
        // SAFETY: SQLite passes `argc` valid values, alive for this call.
        let (stored, query, norm) = unsafe { (*argv, *argv.add(1), *argv.add(2)) };
        if !matches!(
            unsafe { sqlite3_value_numeric_type(norm) },
            SQLITE_FLOAT | SQLITE_INTEGER
        ) {
            return Err("the query norm must be a number");
        }
        let norm = unsafe { sqlite3_value_double(norm) };
        Ok(unsafe { codec::cosine_of_blobs(blob(query), norm, blob(stored)) })
    }));
    let message = match outcome {
        Ok(Ok(Some(value))) => return sqlite3_result_double(ctx, value),
        Ok(Ok(None)) => return sqlite3_result_null(ctx),
        Ok(Err(message)) => format!("{FUNCTION}: {message}"),
        Err(_) => format!("{FUNCTION}: internal error"),
    };
    sqlite3_result_error(ctx, message.as_ptr().cast(), message.len() as c_int);
}
