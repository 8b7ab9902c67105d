//! `memory_fts_score`: SQLite's own `bm25()` ranking, computed from document
//! frequencies the store supplies instead of counting them on every query.
//!
//! FTS5's `bm25()` needs, for each phrase of the query, how many rows of the
//! whole table contain it (its IDF). It counts them by walking the phrase's
//! entire posting list once per query: for a word found in 150,000 of a
//! million memories that alone takes milliseconds, even when the search
//! names three namespaces holding a few hundred rows. The store keeps those
//! counts in a cache (see `doc_freq`) and passes them in; everything else is
//! computed exactly as `fts5Bm25Function` in SQLite's `fts5_aux.c` does it,
//! operation for operation, so the scores are the same `f64` values
//! `-bm25(memory_records_fts)` gave on the content-only index:
//!
//! ```text
//! idf(i)  = ln((N - n(i) + 0.5) / (n(i) + 0.5)), at least 1e-6
//! score   = sum over the query's phrases i of
//!           idf(i) * f(i) * (k1 + 1) / (f(i) + k1 * (1 - b + b * D / avgdl))
//! ```
//!
//! with `k1 = 1.2`, `b = 0.75`, `N` the table's rows, `n(i)` the rows
//! containing phrase `i`, `f(i)` its occurrences in this row, `D` this
//! row's tokens and `avgdl` the mean tokens per row. Only the content
//! column counts (`D`, `avgdl`, `f`): the namespace column the index also
//! holds only narrows the match.
//!
//! Called as `memory_fts_score(memory_records_fts, ?)` where `?` is a blob
//! of little-endian `i64`: one `n(i)` for each of the first phrases of the
//! MATCH expression, which must be the content phrases (the namespace
//! phrases follow them and are not scored).
//!
//! sqlx offers no way to register an FTS5 auxiliary function, so this
//! module calls SQLite's C API directly (the library sqlx links), on a raw
//! connection handle: [`register`] runs once per connection as it opens.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

/// The SQL name of the function.
pub(super) const FUNCTION: &str = "memory_fts_score";
const FUNCTION_C: &CStr = c"memory_fts_score";

/// The FTS5 column scores are computed on (`content`, the first).
const CONTENT_COLUMN: c_int = 0;

const SQLITE_OK: c_int = 0;
const SQLITE_ROW: c_int = 100;

// The C API of the SQLite library sqlx links (libsqlite3-sys). Pointers to
// SQLite's own types are opaque here.
extern "C" {
    fn sqlite3_prepare_v2(
        db: *mut c_void,
        sql: *const c_char,
        bytes: c_int,
        stmt: *mut *mut c_void,
        tail: *mut *const c_char,
    ) -> c_int;
    fn sqlite3_bind_pointer(
        stmt: *mut c_void,
        index: c_int,
        pointer: *mut c_void,
        type_name: *const c_char,
        destroy: Option<unsafe extern "C" fn(*mut c_void)>,
    ) -> c_int;
    fn sqlite3_step(stmt: *mut c_void) -> c_int;
    fn sqlite3_finalize(stmt: *mut c_void) -> c_int;
    fn sqlite3_result_double(ctx: *mut c_void, value: f64);
    fn sqlite3_result_error(ctx: *mut c_void, message: *const c_char, bytes: c_int);
    fn sqlite3_value_blob(value: *mut c_void) -> *const c_void;
    fn sqlite3_value_bytes(value: *mut c_void) -> c_int;
}

/// The first members of `fts5_api` (fts5.h); only `xCreateFunction` is used.
#[repr(C)]
struct Fts5Api {
    version: c_int,
    create_tokenizer: *const c_void,
    find_tokenizer: *const c_void,
    create_function: Option<
        unsafe extern "C" fn(
            api: *mut Fts5Api,
            name: *const c_char,
            user_data: *mut c_void,
            function: Option<AuxFunction>,
            destroy: Option<unsafe extern "C" fn(*mut c_void)>,
        ) -> c_int,
    >,
}

/// `fts5_extension_function` (fts5.h).
type AuxFunction = unsafe extern "C" fn(
    api: *const Fts5ExtensionApi,
    fts: *mut c_void,
    ctx: *mut c_void,
    argc: c_int,
    argv: *mut *mut c_void,
);

/// The first members of `Fts5ExtensionApi` (fts5.h), in their order, up to
/// the last one used. Members not used are opaque pointers.
#[repr(C)]
struct Fts5ExtensionApi {
    version: c_int,
    user_data: *const c_void,
    column_count: *const c_void,
    row_count: Option<unsafe extern "C" fn(*mut c_void, *mut i64) -> c_int>,
    column_total_size: Option<unsafe extern "C" fn(*mut c_void, c_int, *mut i64) -> c_int>,
    tokenize: *const c_void,
    phrase_count: Option<unsafe extern "C" fn(*mut c_void) -> c_int>,
    phrase_size: *const c_void,
    inst_count: Option<unsafe extern "C" fn(*mut c_void, *mut c_int) -> c_int>,
    inst: Option<
        unsafe extern "C" fn(*mut c_void, c_int, *mut c_int, *mut c_int, *mut c_int) -> c_int,
    >,
    rowid: *const c_void,
    column_text: *const c_void,
    column_size: Option<unsafe extern "C" fn(*mut c_void, c_int, *mut c_int) -> c_int>,
}

/// Registers [`FUNCTION`] on the connection `db`.
///
/// # Safety
///
/// `db` must be a valid, open `sqlite3*` that no other thread uses during
/// the call (sqlx's `LockedSqliteHandle` guarantees both).
pub(super) unsafe fn register(db: *mut c_void) -> Result<(), String> {
    let api = fts5_api(db)?;
    // SAFETY: `api` was handed out by FTS5 for this connection and lives as
    // long as it; `FUNCTION_C` is a static C string.
    let rc = match (*api).create_function {
        Some(create) => create(api, FUNCTION_C.as_ptr(), ptr::null_mut(), Some(score), None),
        None => return Err("FTS5 offers no xCreateFunction".into()),
    };
    if rc != SQLITE_OK {
        return Err(format!("FTS5 refused to register {FUNCTION} (error {rc})"));
    }
    Ok(())
}

/// The connection's `fts5_api`, obtained the documented way:
/// `SELECT fts5(?1)` with a pointer bound as type `fts5_api_ptr`.
unsafe fn fts5_api(db: *mut c_void) -> Result<*mut Fts5Api, String> {
    let sql = c"SELECT fts5(?1)";
    let mut stmt: *mut c_void = ptr::null_mut();
    let rc = sqlite3_prepare_v2(db, sql.as_ptr(), -1, &mut stmt, ptr::null_mut());
    if rc != SQLITE_OK || stmt.is_null() {
        return Err(format!(
            "SQLite without FTS5? SELECT fts5(?1) failed (error {rc})"
        ));
    }
    let mut api: *mut Fts5Api = ptr::null_mut();
    let mut rc = sqlite3_bind_pointer(
        stmt,
        1,
        (&mut api as *mut *mut Fts5Api).cast(),
        c"fts5_api_ptr".as_ptr(),
        None,
    );
    if rc == SQLITE_OK {
        rc = sqlite3_step(stmt);
    }
    sqlite3_finalize(stmt);
    if rc != SQLITE_ROW || api.is_null() {
        return Err(format!("cannot reach the FTS5 API (error {rc})"));
    }
    // The members used here exist from version 2 on.
    if (*api).version < 2 {
        return Err(format!("FTS5 API version {} is too old", (*api).version));
    }
    Ok(api)
}

/// The auxiliary function itself; errors become SQL errors, and a panic
/// never crosses into C.
unsafe extern "C" fn score(
    api: *const Fts5ExtensionApi,
    fts: *mut c_void,
    ctx: *mut c_void,
    argc: c_int,
    argv: *mut *mut c_void,
) {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: FTS5 passes a valid API, context and argument array.
        unsafe { compute(&*api, fts, argc, argv) }
    }));
    match outcome {
        Ok(Ok(value)) => sqlite3_result_double(ctx, value),
        Ok(Err(message)) => {
            let text = format!("{FUNCTION}: {message}");
            sqlite3_result_error(ctx, text.as_ptr().cast(), text.len() as c_int);
        }
        Err(_) => {
            let text = format!("{FUNCTION}: internal error");
            sqlite3_result_error(ctx, text.as_ptr().cast(), text.len() as c_int);
        }
    }
}

fn check(rc: c_int, what: &str) -> Result<(), String> {
    if rc == SQLITE_OK {
        Ok(())
    } else {
        Err(format!("{what} failed (error {rc})"))
    }
}

/// The document frequencies passed as the function's argument.
unsafe fn doc_freqs(argc: c_int, argv: *mut *mut c_void) -> Result<Vec<i64>, String> {
    if argc != 1 {
        return Err(format!("takes one argument after the table, got {argc}"));
    }
    let value = *argv;
    let bytes = sqlite3_value_bytes(value);
    let blob = sqlite3_value_blob(value);
    if bytes == 0 {
        return Ok(Vec::new());
    }
    if blob.is_null() || bytes < 0 || bytes % 8 != 0 {
        return Err("the argument is not a blob of 64-bit counts".into());
    }
    let raw = std::slice::from_raw_parts(blob.cast::<u8>(), bytes as usize);
    Ok(raw
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect())
}

unsafe fn compute(
    api: &Fts5ExtensionApi,
    fts: *mut c_void,
    argc: c_int,
    argv: *mut *mut c_void,
) -> Result<f64, String> {
    const K1: f64 = 1.2;
    const B: f64 = 0.75;
    let missing = |name: &str| format!("FTS5 offers no {name}");
    let row_count = api.row_count.ok_or_else(|| missing("xRowCount"))?;
    let column_total_size = api
        .column_total_size
        .ok_or_else(|| missing("xColumnTotalSize"))?;
    let phrase_count = api.phrase_count.ok_or_else(|| missing("xPhraseCount"))?;
    let inst_count = api.inst_count.ok_or_else(|| missing("xInstCount"))?;
    let inst = api.inst.ok_or_else(|| missing("xInst"))?;
    let column_size = api.column_size.ok_or_else(|| missing("xColumnSize"))?;

    let hits = doc_freqs(argc, argv)?;
    let scored = hits.len();
    let phrases = usize::try_from(phrase_count(fts)).unwrap_or(0);
    if scored > phrases {
        return Err(format!(
            "{scored} document counts for a query of {phrases} phrases"
        ));
    }

    // As fts5Bm25GetData: the mean row length and each phrase's IDF.
    let mut rows: i64 = 0;
    check(row_count(fts, &mut rows), "xRowCount")?;
    let mut tokens: i64 = 0;
    check(
        column_total_size(fts, CONTENT_COLUMN, &mut tokens),
        "xColumnTotalSize",
    )?;
    let avgdl = tokens as f64 / rows as f64;
    let idf: Vec<f64> = hits
        .iter()
        .map(|&hit| {
            let idf = (((rows - hit) as f64 + 0.5) / (hit as f64 + 0.5)).ln();
            if idf <= 0.0 {
                1e-6
            } else {
                idf
            }
        })
        .collect();

    // As fts5Bm25Function: the phrase frequencies of this row, its length,
    // then the sum in phrase order.
    let mut freq = vec![0.0f64; scored];
    let mut count: c_int = 0;
    check(inst_count(fts, &mut count), "xInstCount")?;
    for i in 0..count {
        let (mut phrase, mut column, mut offset) = (0, 0, 0);
        check(inst(fts, i, &mut phrase, &mut column, &mut offset), "xInst")?;
        if let Some(f) = usize::try_from(phrase).ok().and_then(|p| freq.get_mut(p)) {
            *f += 1.0;
        }
    }
    let mut size: c_int = 0;
    check(column_size(fts, CONTENT_COLUMN, &mut size), "xColumnSize")?;
    let d = f64::from(size);
    let mut score = 0.0f64;
    for (idf, f) in idf.iter().zip(&freq) {
        score += idf * ((f * (K1 + 1.0)) / (f + K1 * (1.0 - B + B * d / avgdl)));
    }
    // bm25() answers -score and the store negated it again.
    Ok(score)
}
