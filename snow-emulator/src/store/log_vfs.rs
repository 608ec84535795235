//! A VFS over the platform's own that gathers the write-ahead log's appends into one write.
//!
//! SQLite logs each page with two `pwrite`s, a 24-byte frame header and the page, 4,120 bytes
//! apart: two system calls and two trips through the kernel's page cache per page, which the
//! profiles of a full export showed as a seventh of the worker's time (docs/performance.md).
//! This VFS keeps a log's contiguous writes in a buffer and hands them to the platform's VFS
//! in one write:
//!
//! - after the page of a commit's last frame (its header carries the database size, which
//!   only a commit's last frame does), so the write's error is the commit's error;
//! - before anything else touches the log: a read, a sync, a size, a truncation, a file
//!   control, a close, or a write anywhere but right after the buffer;
//! - when the next write would take the buffer past what the platform VFS writes at once
//!   (128 KiB − 1: about thirty frames of 4 KiB pages).
//!
//! Invariant: a commit's frames are in the file before SQLite publishes the commit in the
//! shared index (`walFrames` publishes after writing the last frame, which flushes). As a
//! second line, the database file's `xShmBarrier`, which SQLite calls on the committing
//! connection just before it publishes, writes out whatever that connection's log still
//! buffers; if that write fails the process aborts rather than publish frames that are not
//! in the file (the log's recovery then ends at the last complete commit).
//!
//! A write transaction that is rolled back may leave frames in the buffer (spilled from a
//! full page cache, never committed). They are dropped when the connection releases the
//! log's write lock, so they are never written over frames another connection commits next.
//!
//! Each file's state is touched only through its connection, which one thread uses at a time;
//! the only shared state is the registry linking a connection's database file to its log.

#![allow(unsafe_code)]

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use rusqlite::ffi;

/// The name the store's connections open with ([`name`]).
const NAME: &CStr = c"fnms-log";

/// The shared index's lock a writer holds for its whole write transaction (`WAL_WRITE_LOCK`).
const WRITE_LOCK: c_int = 0;

/// A frame header's size in the log's format.
const FRAME_HEADER: usize = 24;

/// The most one write hands the platform VFS: SQLite's unix VFS writes at most 128 KiB − 1
/// bytes a call (it masks the length with `0x1ffff`, pages being at most 64 KiB).
const MAX_WRITE: usize = 0x1ffff;

/// How many writes a VFS's logs took and how many it made (for tests and measurement).
#[derive(Debug, Default)]
pub struct Stats {
    /// Writes SQLite made to log files.
    pub received: AtomicU64,
    /// Writes this VFS made to log files through the platform's VFS.
    pub issued: AtomicU64,
}

/// What a registered VFS carries (`pAppData`).
struct Shim {
    real: *mut ffi::sqlite3_vfs,
    stats: Stats,
}

/// Registers the VFS once and returns its name, for `Connection::open_with_flags_and_vfs`.
pub fn name() -> Result<&'static CStr, String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| register(NAME).map(|_| ()))
        .clone()
        .map(|()| NAME)
}

/// Registers a VFS named `name` over the default one (not made the default), with its own
/// counts. Each call leaks one small VFS object, which SQLite needs for the process's life.
pub fn register(name: &CStr) -> Result<&'static Stats, String> {
    // SAFETY: sqlite3_vfs_find(NULL) returns the default VFS (initializing SQLite), which
    // lives for the process; the new VFS and its name are leaked, so they do too.
    unsafe {
        let real = ffi::sqlite3_vfs_find(ptr::null());
        if real.is_null() {
            return Err("SQLite has no default VFS".into());
        }
        let shim: &'static Shim = Box::leak(Box::new(Shim {
            real,
            stats: Stats::default(),
        }));
        let vfs = Box::leak(Box::new(shim_vfs(
            &*real,
            CString::from(name).into_raw(),
            shim,
        )));
        match ffi::sqlite3_vfs_register(vfs, 0) {
            ffi::SQLITE_OK => Ok(&shim.stats),
            rc => Err(format!("registering the log VFS failed (SQLite code {rc})")),
        }
    }
}

/// The VFS object: the real one's sizes, every method passed on to it.
fn shim_vfs(real: &ffi::sqlite3_vfs, name: *const c_char, shim: &'static Shim) -> ffi::sqlite3_vfs {
    ffi::sqlite3_vfs {
        iVersion: 2,
        szOsFile: std::mem::size_of::<File>() as c_int + real.szOsFile,
        mxPathname: real.mxPathname,
        pNext: ptr::null_mut(),
        zName: name,
        pAppData: ptr::from_ref(shim).cast_mut().cast(),
        xOpen: Some(open),
        xDelete: Some(delete),
        xAccess: Some(access),
        xFullPathname: Some(full_pathname),
        xDlOpen: Some(dl_open),
        xDlError: Some(dl_error),
        xDlSym: Some(dl_sym),
        xDlClose: Some(dl_close),
        xRandomness: Some(randomness),
        xSleep: Some(sleep),
        xCurrentTime: Some(current_time),
        xGetLastError: Some(get_last_error),
        xCurrentTimeInt64: Some(current_time_int64),
        xSetSystemCall: None,
        xGetSystemCall: None,
        xNextSystemCall: None,
    }
}

/// An open file: SQLite's header, then the platform VFS's file object right after it.
#[repr(C)]
struct File {
    base: ffi::sqlite3_file,
    real: *mut ffi::sqlite3_file,
    shim: *const Shim,
    role: Role,
}

enum Role {
    /// A write-ahead log, and the database file of the same connection, if known.
    Log(Log, *mut File),
    /// A main database file (its name's address, its registry key) and its connection's log.
    Database(usize, *mut File),
    Other,
}

/// A log's buffered writes.
struct Log {
    buf: Vec<u8>,
    /// Where `buf` starts in the file.
    start: i64,
    /// Where the page of a commit frame whose header was just written goes.
    commit_page_at: Option<i64>,
}

/// Main database files by their name's address: SQLite opens a connection's log under a name
/// from the same allocation, which `sqlite3_filename_database` leads back to.
fn databases() -> std::sync::MutexGuard<'static, HashMap<usize, usize>> {
    static DATABASES: OnceLock<Mutex<HashMap<usize, usize>>> = OnceLock::new();
    DATABASES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: Some(shm_map),
    xShmLock: Some(shm_lock),
    xShmBarrier: Some(shm_barrier),
    xShmUnmap: Some(shm_unmap),
    xFetch: Some(fetch),
    xUnfetch: Some(unfetch),
};

impl Log {
    fn new() -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            commit_page_at: None,
        }
    }

    fn end(&self) -> i64 {
        self.start + self.buf.len() as i64
    }

    /// Takes one of SQLite's writes (see the module's documentation for when it is written).
    fn write(
        &mut self,
        real: *mut ffi::sqlite3_file,
        stats: &Stats,
        data: &[u8],
        off: i64,
    ) -> c_int {
        stats.received.fetch_add(1, Ordering::Relaxed);
        let ends_commit = self.commit_page_at.take() == Some(off);
        if !self.buf.is_empty() && off != self.end() {
            let rc = self.flush(real, stats);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
        }
        if data.len() == FRAME_HEADER && data[4..8] != [0; 4] {
            self.commit_page_at = Some(off + FRAME_HEADER as i64);
            if self.buf.is_empty() {
                // Not an append after other frames (a one-frame commit, or a checksum
                // rewritten in place): nothing to gather it with.
                return write_real(real, stats, data, off);
            }
        }
        if self.buf.len() + data.len() > MAX_WRITE {
            let rc = self.flush(real, stats);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
            if data.len() > MAX_WRITE {
                return write_real(real, stats, data, off);
            }
        }
        if self.buf.is_empty() {
            self.buf.reserve(MAX_WRITE);
            self.start = off;
        }
        self.buf.extend_from_slice(data);
        if ends_commit {
            return self.flush(real, stats);
        }
        ffi::SQLITE_OK
    }

    /// Forgets what the buffer holds: the frames of a transaction that was rolled back.
    fn discard(&mut self) {
        self.buf.clear();
        self.commit_page_at = None;
    }

    /// Writes the buffer out. It is emptied either way: after a failed write SQLite abandons
    /// the frames (the transaction rolls back) and writes them again where they belong.
    fn flush(&mut self, real: *mut ffi::sqlite3_file, stats: &Stats) -> c_int {
        if self.buf.is_empty() {
            return ffi::SQLITE_OK;
        }
        let rc = write_real(real, stats, &self.buf, self.start);
        self.buf.clear();
        rc
    }
}

/// The file behind SQLite's pointer. SAFETY: `file` was opened by [`open`] and is used by one
/// thread at a time (SQLite's contract for a connection's files).
unsafe fn file<'a>(file: *mut ffi::sqlite3_file) -> &'a mut File {
    unsafe { &mut *file.cast::<File>() }
}

/// Writes out the log's buffer, if `f` is a log; before SQLite reads, syncs or sizes it.
fn flush_log(f: &mut File) -> c_int {
    match &mut f.role {
        // SAFETY: `shim` is the leaked VFS this file was opened through.
        Role::Log(log, _) => log.flush(f.real, unsafe { &(*f.shim).stats }),
        _ => ffi::SQLITE_OK,
    }
}

/// Calls the method `$m` of the platform file `$real`, or returns `$none` when it has none.
macro_rules! pass {
    ($real:expr, $m:ident, $none:expr $(, $arg:expr)*) => {{
        let real: *mut ffi::sqlite3_file = $real;
        // SAFETY: `real` is an open file of the platform VFS (see `open`).
        match unsafe { (*(*real).pMethods).$m } {
            Some(x) => unsafe { x(real $(, $arg)*) },
            None => $none,
        }
    }};
}

/// Calls the platform file's method for SQLite's file `$p` (see [`pass!`]).
macro_rules! forward {
    ($p:expr, $m:ident, $none:expr $(, $arg:expr)*) => {{
        // SAFETY: see `file`.
        let f = unsafe { file($p) };
        pass!(f.real, $m, $none $(, $arg)*)
    }};
}

/// Like [`forward!`], after writing out the log's buffer if `$p` is a log; a failed write is
/// the call's error.
macro_rules! flush_and_forward {
    ($p:expr, $m:ident, $none:expr $(, $arg:expr)*) => {{
        // SAFETY: see `file`.
        let f = unsafe { file($p) };
        match flush_log(f) {
            ffi::SQLITE_OK => pass!(f.real, $m, $none $(, $arg)*),
            rc => rc,
        }
    }};
}

/// Hands `data` to the platform file in one write.
fn write_real(real: *mut ffi::sqlite3_file, stats: &Stats, data: &[u8], off: i64) -> c_int {
    stats.issued.fetch_add(1, Ordering::Relaxed);
    let Ok(len) = c_int::try_from(data.len()) else {
        return ffi::SQLITE_IOERR_WRITE;
    };
    // `data` is valid for `len` bytes.
    pass!(
        real,
        xWrite,
        ffi::SQLITE_IOERR_WRITE,
        data.as_ptr().cast(),
        len,
        off
    )
}

unsafe extern "C" fn open(
    vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    out: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // SAFETY: SQLite hands this VFS's own object and `szOsFile` bytes at `out`, aligned for
    // pointers; the platform file is placed right after ours.
    unsafe {
        let shim = (*vfs).pAppData.cast::<Shim>().cast_const();
        let real = out
            .cast::<u8>()
            .add(std::mem::size_of::<File>())
            .cast::<ffi::sqlite3_file>();
        ptr::write(
            out.cast::<File>(),
            File {
                base: ffi::sqlite3_file {
                    pMethods: ptr::null(),
                },
                real,
                shim,
                role: Role::Other,
            },
        );
        (*real).pMethods = ptr::null();
        let Some(x_open) = (*(*shim).real).xOpen else {
            return ffi::SQLITE_CANTOPEN;
        };
        let rc = x_open((*shim).real, name, real, flags, out_flags);
        if (*real).pMethods.is_null() {
            // Nothing to close: SQLite will not call xClose.
            return rc;
        }
        (*out).pMethods = &METHODS;
        if rc == ffi::SQLITE_OK && !name.is_null() {
            link(file(out), name, flags);
        }
        rc
    }
}

/// Gives a log or a main database file its role, and links a log to its connection's
/// database file.
fn link(f: &mut File, name: ffi::sqlite3_filename, flags: c_int) {
    if flags & ffi::SQLITE_OPEN_WAL != 0 {
        // SAFETY: a log's name is one SQLite made from its database's name.
        let database = unsafe { ffi::sqlite3_filename_database(name) } as usize;
        let db = databases()
            .get(&database)
            .map_or(ptr::null_mut(), |&d| d as *mut File);
        let me = ptr::from_mut(f);
        f.role = Role::Log(Log::new(), db);
        if !db.is_null() {
            // SAFETY: registered database files are open (removed on close).
            if let Role::Database(_, log) = unsafe { &mut (*db).role } {
                *log = me;
            }
        }
    } else if flags & ffi::SQLITE_OPEN_MAIN_DB != 0 {
        let key = name as usize;
        databases().insert(key, ptr::from_mut(f) as usize);
        f.role = Role::Database(key, ptr::null_mut());
    }
}

unsafe extern "C" fn close(p: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: see `file`.
    let f = unsafe { file(p) };
    let flushed = flush_log(f);
    unlink(f);
    let closed = pass!(f.real, xClose, ffi::SQLITE_OK);
    // SAFETY: written by `open`; SQLite closes a file once and then frees it.
    unsafe { ptr::drop_in_place(p.cast::<File>()) };
    if flushed != ffi::SQLITE_OK {
        flushed
    } else {
        closed
    }
}

/// Forgets the link between a closing file and its connection's log or database file.
fn unlink(f: &mut File) {
    // SAFETY: a linked file is open: each unlinks the other when it closes.
    match f.role {
        Role::Log(_, db) if !db.is_null() => {
            if let Role::Database(_, log) = unsafe { &mut (*db).role } {
                *log = ptr::null_mut();
            }
        }
        Role::Database(key, log) => {
            databases().remove(&key);
            if !log.is_null()
                && let Role::Log(_, db) = unsafe { &mut (*log).role }
            {
                *db = ptr::null_mut();
            }
        }
        _ => {}
    }
}

unsafe extern "C" fn read(
    p: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amt: c_int,
    off: i64,
) -> c_int {
    flush_and_forward!(p, xRead, ffi::SQLITE_IOERR_READ, buf, amt, off)
}

unsafe extern "C" fn write(
    p: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amt: c_int,
    off: i64,
) -> c_int {
    // SAFETY: see `file`; SQLite's buffer is valid for `amt` bytes.
    let f = unsafe { file(p) };
    match &mut f.role {
        Role::Log(log, _) => {
            let data = unsafe {
                std::slice::from_raw_parts(buf.cast::<u8>(), usize::try_from(amt).unwrap_or(0))
            };
            log.write(f.real, unsafe { &(*f.shim).stats }, data, off)
        }
        _ => pass!(f.real, xWrite, ffi::SQLITE_IOERR_WRITE, buf, amt, off),
    }
}

unsafe extern "C" fn truncate(p: *mut ffi::sqlite3_file, size: i64) -> c_int {
    flush_and_forward!(p, xTruncate, ffi::SQLITE_IOERR_TRUNCATE, size)
}

unsafe extern "C" fn sync(p: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    flush_and_forward!(p, xSync, ffi::SQLITE_IOERR_FSYNC, flags)
}

unsafe extern "C" fn file_size(p: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    flush_and_forward!(p, xFileSize, ffi::SQLITE_IOERR_FSTAT, size)
}

unsafe extern "C" fn lock(p: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    forward!(p, xLock, ffi::SQLITE_IOERR_LOCK, level)
}

unsafe extern "C" fn unlock(p: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    forward!(p, xUnlock, ffi::SQLITE_IOERR_UNLOCK, level)
}

unsafe extern "C" fn check_reserved_lock(p: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    forward!(
        p,
        xCheckReservedLock,
        ffi::SQLITE_IOERR_CHECKRESERVEDLOCK,
        out
    )
}

unsafe extern "C" fn file_control(p: *mut ffi::sqlite3_file, op: c_int, arg: *mut c_void) -> c_int {
    flush_and_forward!(p, xFileControl, ffi::SQLITE_NOTFOUND, op, arg)
}

unsafe extern "C" fn sector_size(p: *mut ffi::sqlite3_file) -> c_int {
    forward!(p, xSectorSize, 4096)
}

unsafe extern "C" fn device_characteristics(p: *mut ffi::sqlite3_file) -> c_int {
    forward!(p, xDeviceCharacteristics, 0)
}

unsafe extern "C" fn shm_map(
    p: *mut ffi::sqlite3_file,
    region: c_int,
    size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    forward!(
        p,
        xShmMap,
        ffi::SQLITE_IOERR_SHMMAP,
        region,
        size,
        extend,
        out
    )
}

/// SQLite's locks on the shared index. Releasing the log's write lock ends a write
/// transaction: a commit has written its frames out by then, so whatever the connection's log
/// still holds belongs to a transaction that was rolled back, and is dropped rather than
/// written later over frames another connection may have committed at the same place.
unsafe extern "C" fn shm_lock(
    p: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    // SAFETY: see `file`; a linked log is open and belongs to the same connection.
    let f = unsafe { file(p) };
    if offset == WRITE_LOCK
        && flags == ffi::SQLITE_SHM_UNLOCK | ffi::SQLITE_SHM_EXCLUSIVE
        && let Role::Database(_, log) = f.role
        && !log.is_null()
        && let Role::Log(buffered, _) = unsafe { &mut (*log).role }
    {
        buffered.discard();
    }
    pass!(
        f.real,
        xShmLock,
        ffi::SQLITE_IOERR_SHMLOCK,
        offset,
        n,
        flags
    )
}

/// SQLite's barrier before it publishes a commit: the connection's log must be in the file.
unsafe extern "C" fn shm_barrier(p: *mut ffi::sqlite3_file) {
    // SAFETY: see `file`; a linked log is open and belongs to the same connection.
    let f = unsafe { file(p) };
    if let Role::Database(_, log) = f.role
        && !log.is_null()
        && flush_log(unsafe { &mut *log }) != ffi::SQLITE_OK
    {
        tracing::error!("writing the write-ahead log failed before a commit was published");
        std::process::abort();
    }
    pass!(f.real, xShmBarrier, ())
}

unsafe extern "C" fn shm_unmap(p: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    forward!(p, xShmUnmap, ffi::SQLITE_OK, delete)
}

unsafe extern "C" fn fetch(
    p: *mut ffi::sqlite3_file,
    off: i64,
    amt: c_int,
    out: *mut *mut c_void,
) -> c_int {
    forward!(p, xFetch, ffi::SQLITE_OK, off, amt, out)
}

unsafe extern "C" fn unfetch(p: *mut ffi::sqlite3_file, off: i64, page: *mut c_void) -> c_int {
    forward!(p, xUnfetch, ffi::SQLITE_OK, off, page)
}

/// The platform VFS of a registered one.
unsafe fn real(vfs: *mut ffi::sqlite3_vfs) -> *mut ffi::sqlite3_vfs {
    // SAFETY: every VFS registered here carries its `Shim`.
    unsafe { (*(*vfs).pAppData.cast::<Shim>()).real }
}

/// Passes a VFS method on to the platform VFS.
macro_rules! pass_vfs {
    ($vfs:expr, $m:ident, $none:expr $(, $arg:expr)*) => {{
        // SAFETY: the platform VFS lives for the process.
        let real = unsafe { real($vfs) };
        match unsafe { (*real).$m } {
            Some(x) => unsafe { x(real $(, $arg)*) },
            None => $none,
        }
    }};
}

unsafe extern "C" fn delete(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    sync_dir: c_int,
) -> c_int {
    pass_vfs!(vfs, xDelete, ffi::SQLITE_IOERR_DELETE, name, sync_dir)
}

unsafe extern "C" fn access(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    flags: c_int,
    out: *mut c_int,
) -> c_int {
    pass_vfs!(vfs, xAccess, ffi::SQLITE_IOERR_ACCESS, name, flags, out)
}

unsafe extern "C" fn full_pathname(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    n: c_int,
    out: *mut c_char,
) -> c_int {
    pass_vfs!(vfs, xFullPathname, ffi::SQLITE_CANTOPEN, name, n, out)
}

unsafe extern "C" fn dl_open(vfs: *mut ffi::sqlite3_vfs, name: *const c_char) -> *mut c_void {
    pass_vfs!(vfs, xDlOpen, ptr::null_mut(), name)
}

unsafe extern "C" fn dl_error(vfs: *mut ffi::sqlite3_vfs, n: c_int, out: *mut c_char) {
    pass_vfs!(vfs, xDlError, (), n, out)
}

type DlSym = Option<unsafe extern "C" fn(*mut ffi::sqlite3_vfs, *mut c_void, *const c_char)>;

unsafe extern "C" fn dl_sym(
    vfs: *mut ffi::sqlite3_vfs,
    handle: *mut c_void,
    symbol: *const c_char,
) -> DlSym {
    pass_vfs!(vfs, xDlSym, None, handle, symbol)
}

unsafe extern "C" fn dl_close(vfs: *mut ffi::sqlite3_vfs, handle: *mut c_void) {
    pass_vfs!(vfs, xDlClose, (), handle)
}

unsafe extern "C" fn randomness(vfs: *mut ffi::sqlite3_vfs, n: c_int, out: *mut c_char) -> c_int {
    pass_vfs!(vfs, xRandomness, 0, n, out)
}

unsafe extern "C" fn sleep(vfs: *mut ffi::sqlite3_vfs, micros: c_int) -> c_int {
    pass_vfs!(vfs, xSleep, 0, micros)
}

unsafe extern "C" fn current_time(vfs: *mut ffi::sqlite3_vfs, out: *mut f64) -> c_int {
    pass_vfs!(vfs, xCurrentTime, ffi::SQLITE_ERROR, out)
}

unsafe extern "C" fn get_last_error(
    vfs: *mut ffi::sqlite3_vfs,
    n: c_int,
    out: *mut c_char,
) -> c_int {
    pass_vfs!(vfs, xGetLastError, 0, n, out)
}

unsafe extern "C" fn current_time_int64(vfs: *mut ffi::sqlite3_vfs, out: *mut i64) -> c_int {
    pass_vfs!(vfs, xCurrentTimeInt64, ffi::SQLITE_ERROR, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::{Connection, OpenFlags};

    /// A database file opened through a VFS of the test's own (its own counts), in WAL mode
    /// with nothing checkpointed, so every commit stays in the log.
    fn open(vfs: &CStr, path: &std::path::Path) -> Connection {
        let conn = Connection::open_with_flags_and_vfs(path, OpenFlags::default(), vfs)
            .expect("open through the VFS");
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0; \
             CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v BLOB);",
        )
        .expect("schema");
        conn
    }

    /// A copy of the database and its log as they are in the files now, opened with the
    /// platform VFS: SQLite recovers the copy's log from its frames and their checksums.
    fn recovered_copy(path: &std::path::Path) -> Connection {
        let copy = path.with_extension("copy");
        std::fs::copy(path, &copy).expect("copy the database");
        let log = |p: &std::path::Path| std::path::PathBuf::from(format!("{}-wal", p.display()));
        std::fs::copy(log(path), log(&copy)).expect("copy the log");
        Connection::open(&copy).expect("open the copy")
    }

    fn rows(conn: &Connection) -> (i64, i64) {
        conn.query_row(
            "SELECT count(*), coalesce(sum(length(v)), 0) FROM t",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("count")
    }

    fn integrity(conn: &Connection) -> String {
        conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity check")
    }

    #[test]
    fn a_commit_reaches_the_log_in_a_few_writes_and_other_connections_see_it_at_once() {
        let stats = register(c"fnms-log-test-few-writes").expect("register");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db.sqlite");
        let mut writer = open(c"fnms-log-test-few-writes", &path);
        let reader = Connection::open(&path).expect("reader");
        for commit in 1..=5_i64 {
            let before = (
                stats.received.load(Ordering::Relaxed),
                stats.issued.load(Ordering::Relaxed),
            );
            let tx = writer.transaction().expect("begin");
            for i in 0..100 {
                tx.execute(
                    "INSERT INTO t (k, v) VALUES (?1, zeroblob(3000))",
                    [commit * 1000 + i],
                )
                .expect("insert");
            }
            tx.commit().expect("commit");
            let received = stats.received.load(Ordering::Relaxed) - before.0;
            let issued = stats.issued.load(Ordering::Relaxed) - before.1;
            // About 80 pages, two writes each from SQLite, gathered about thirty frames a write.
            assert!(
                received >= 150,
                "commit {commit}: SQLite wrote {received} times"
            );
            assert!(
                issued <= received / 20,
                "commit {commit}: {issued} writes for {received}"
            );
            // Published and in the file: the other connection reads it right away.
            assert_eq!(rows(&reader), (commit * 100, commit * 100 * 3000));
        }
    }

    #[test]
    fn the_log_in_the_file_recovers_every_commit() {
        register(c"fnms-log-test-recovers").expect("register");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db.sqlite");
        let writer = open(c"fnms-log-test-recovers", &path);
        for i in 0..300_i64 {
            // Commits of one frame and of many, so both ways a commit's header is written.
            let size = if i % 3 == 0 { 10 } else { 9000 };
            writer
                .execute(
                    "INSERT INTO t (k, v) VALUES (?1, randomblob(?2))",
                    [i, size],
                )
                .expect("insert");
        }
        let expected = rows(&writer);
        let copy = recovered_copy(&path);
        assert_eq!(integrity(&copy), "ok");
        assert_eq!(rows(&copy), expected);
    }

    /// A transaction larger than the page cache spills frames into the log before it
    /// commits, reads them back, and overwrites them in place (after which SQLite rewrites
    /// the frames' checksums): every way SQLite writes a log other than appending.
    #[test]
    fn spilled_overwritten_and_rewritten_frames_are_read_back_and_recovered() {
        register(c"fnms-log-test-spills").expect("register");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db.sqlite");
        let mut writer = open(c"fnms-log-test-spills", &path);
        writer
            .execute_batch("PRAGMA cache_size=10;")
            .expect("small cache");
        let tx = writer.transaction().expect("begin");
        for i in 0..400_i64 {
            tx.execute("INSERT INTO t (k, v) VALUES (?1, zeroblob(2000))", [i])
                .expect("insert");
        }
        // Every row again: the pages spilled above are changed and written again.
        tx.execute("UPDATE t SET v = randomblob(2100)", [])
            .expect("update");
        assert_eq!(
            rows(&tx),
            (400, 400 * 2100),
            "read back inside the transaction"
        );
        tx.commit().expect("commit");
        let copy = recovered_copy(&path);
        assert_eq!(integrity(&copy), "ok");
        assert_eq!(rows(&copy), (400, 400 * 2100));
        let same: i64 = copy
            .query_row(
                "SELECT count(*) FROM t WHERE v = (SELECT v FROM t WHERE k = 7)",
                [],
                |r| r.get(0),
            )
            .expect("compare");
        assert_eq!(same, 1, "random contents, each row its own");
    }

    /// A transaction rolled back after spilling frames leaves them in the connection's
    /// buffer; another connection then commits frames at the same place in the log. The
    /// rolled-back frames must never be written over them.
    #[test]
    fn a_rolled_back_transaction_never_writes_over_another_connection_s_commit() {
        register(c"fnms-log-test-rollback").expect("register");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db.sqlite");
        let mut spiller = open(c"fnms-log-test-rollback", &path);
        let mut other = open(c"fnms-log-test-rollback", &path);
        // Nothing in the log yet, so undoing the transaction reads no page back from it.
        spiller
            .execute_batch("PRAGMA cache_size=5; PRAGMA wal_checkpoint(TRUNCATE);")
            .expect("small cache, empty log");
        let tx = spiller.transaction().expect("begin");
        tx.execute(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 19) \
             INSERT INTO t (k, v) SELECT i, zeroblob(3000) FROM n",
            [],
        )
        .expect("insert");
        tx.rollback().expect("rollback");
        let tx = other.transaction().expect("begin");
        for i in 100..140_i64 {
            tx.execute("INSERT INTO t (k, v) VALUES (?1, randomblob(3000))", [i])
                .expect("insert");
        }
        tx.commit().expect("commit");
        spiller
            .execute("INSERT INTO t (k, v) VALUES (1000, randomblob(10))", [])
            .expect("a later commit");
        let reader = Connection::open(&path).expect("reader");
        assert_eq!(integrity(&reader), "ok");
        assert_eq!(rows(&reader), (41, 40 * 3000 + 10));
        let copy = recovered_copy(&path);
        assert_eq!(integrity(&copy), "ok");
        assert_eq!(rows(&copy), (41, 40 * 3000 + 10));
    }
}
