/* store: the only code that speaks SQL. One store_t is one SQLite connection
 * with its prepared statements; it belongs to one thread at a time.
 *
 * The control thread (and the admin CLI, as another process) hold read-write
 * handles; edge lookups use read-only handles on their own thread. SQLite runs
 * in WAL mode with synchronous=FULL, so a committed write survives a crash or
 * power cut, and readers never block the writer.
 *
 * Records returned by the area modules (store_domain.h, store_project.h, …)
 * own their strings; each has a *_clear() that frees them. A future
 * PostgreSQL backend (fleet mode) replaces this file and the area files;
 * callers only see these functions and records. */
#ifndef HEE_STORE_H
#define HEE_STORE_H

#include <sqlite3.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct store store_t;

enum store_rc {
    STORE_OK = 0,
    STORE_ERR = -1,       /* I/O, corruption, busy past the timeout: logged */
    STORE_NOTFOUND = -2,
    STORE_CONFLICT = -3,  /* a uniqueness rule refused the write */
    STORE_BUSY = -4,      /* no-wait handle (store_set_nowait) or a checkpoint:
                           * another connection holds the lock; nothing was done */
};

enum store_mode { STORE_RW, STORE_RO };

/* Opens (and for STORE_RW creates and migrates) the database at path.
 * On failure returns NULL and sets *err to a malloc'd reason (caller frees). */
store_t *store_open(const char *path, enum store_mode mode, char **err);
void store_close(store_t *s);

/* Schema version this build writes (PRAGMA user_version after migrating). */
int store_schema_version(void);
int store_user_version(store_t *s);

/* Transactions. store_begin takes the write lock at once (BEGIN IMMEDIATE)
 * so a transaction never fails half-way on a lock upgrade. Nested calls are
 * not supported: an area function documented "in a transaction" expects the
 * caller to hold one; the others open their own. */
int store_begin(store_t *s);
int store_commit(store_t *s);
void store_rollback(store_t *s);
int store_in_tx(const store_t *s);

/* Lock waits. By default a statement that finds another connection's lock
 * (another thread's or process's write transaction) waits for it in
 * SQLite's busy handler, up to STORE_BUSY_WAIT_MS, blocking its thread. A
 * no-wait handle (on = 1) never sleeps: store_begin and any statement that
 * meets a held lock fail at once with STORE_BUSY (logged at debug level
 * only), so a loop can keep its batch and try again from a timer. Reads
 * in WAL mode take no lock a writer holds, so in practice only writes see
 * it. on = 0 restores the wait (e.g. for a last flush at shutdown). */
#define STORE_BUSY_WAIT_MS 5000
void store_set_nowait(store_t *s, int on);

/* Retry pacing for a no-wait handle's writer after STORE_BUSY. Commits
 * hold the lock for milliseconds, so tries stay frequent (5 ms, doubling
 * to STORE_RETRY_MAX_MS: a longer step delayed webhook parks by ~250 ms
 * under a registration burst); an episode that lasts STORE_RETRY_WARN_MS
 * (a CLI or backup holding a transaction open) is worth one warning. A
 * plain value owned by its user; zero-initialise it. */
#define STORE_RETRY_MIN_MS 5
#define STORE_RETRY_MAX_MS 20
#define STORE_RETRY_WARN_MS 300
typedef struct store_retry {
    int delay_ms;                /* 0: no episode under way */
    int64_t since_ms;            /* monotonic ms the episode began */
    int warned;
} store_retry_t;
/* The delay before the next try; *warn is 1 once per episode, when it has
 * lasted STORE_RETRY_WARN_MS. */
int store_retry_next(store_retry_t *r, int64_t now_ms, int *warn);
/* A write went through: the episode is over. */
void store_retry_done(store_retry_t *r);

/* Checkpoints and truncates the WAL (clean shutdown). STORE_BUSY, quietly,
 * while another connection still reads or writes (the other control-side
 * thread, an edge loader, the CLI): the last connection to close
 * checkpoints anyway, so this only keeps the WAL small when it can. */
int store_checkpoint(store_t *s);

/* ---- savepoints, the read-lock pin and connection tuning ---- */
/* A savepoint inside the caller's transaction (store_begin), one level
 * deep: a unit of work — one registration of a batch — that can be undone
 * without losing the rest of the transaction. _undo leaves the transaction
 * as it was at _savepoint and open. */
int store_savepoint(store_t *s);
int store_savepoint_release(store_t *s);
void store_savepoint_undo(store_t *s);

/* Read-lock pin (SQLite on the unix VFS): a read-only connection that keeps
 * a read transaction open beside the read-write handle s in this process.
 * While it does, the WAL read lock each of s's statements takes is one the
 * process already holds, and SQLite takes it without the two fcntl() calls
 * it otherwise makes per statement. Statements on s still see every commit
 * at once: the pin changes what locks cost, never what a query returns.
 * SQLite would not let a checkpoint pass a held pin, so it is released after
 * every commit on s (before SQLite's automatic checkpoint, which s then runs
 * as it would by default) and must be released before a checkpoint that
 * has to finish (shutdown). store_pin_free restores s's default. */
typedef struct store_pin store_pin_t;
store_pin_t *store_pin_new(store_t *s, const char *path, char **err);
/* Takes the pin if it is not held; best effort (a failure costs only speed). */
void store_pin_hold(store_pin_t *p);
void store_pin_release(store_pin_t *p);
/* 1 while the pin is held and no counted commit (store_count_commits) has
 * happened since it was taken: a stale pin must be released and taken again. */
int store_pin_held(const store_pin_t *p);
/* Counts this read-write handle's commits in counter, which the process's
 * other read-write handles share, so that a read-lock pin on any of them
 * knows when another thread's commit made it stale (store_pin_held). Call
 * it before store_pin_new on s (both install SQLite's wal hook). */
void store_count_commits(store_t *s, atomic_uint_least64_t *counter);
/* The pin's read-only handle (owned by the pin). While the pin is held, a
 * statement on it runs inside the pin's open read transaction — no lock,
 * no file check, no transaction of its own — and sees the store as of when
 * the pin was taken: every commit on s (which releases the pin) and on the
 * handles counting commits with it (which make it stale), and another
 * process's commits up to the pin's age. */
store_t *store_pin_store(store_pin_t *p);
void store_pin_free(store_pin_t *p);

/* Lets this connection read the file through mmap (up to bytes) rather than
 * a pread per page: resolve lookups over a million rows then cost no system
 * call beyond the WAL read lock. Best effort; for the control connection
 * and its resolve pin. */
int store_tune_reads(store_t *s, int64_t bytes);

/* For a connection that runs savepoints (registration batches): keeps
 * SQLite's savepoint journal in memory. Each savepoint copies the pages its
 * unit changes (a dozen for a registration); past 64 KiB SQLite otherwise
 * moves that journal to a temporary file and writes every copy to it.
 * Temporary tables and sorts of this connection then live in memory too.
 * Best effort; for the control connection. */
int store_tune_writes(store_t *s);

/* ---- for the area modules only (store_*.c) ---- */
/* Returns the cached statement for this SQL text (keyed by the pointer, so
 * pass string literals), reset and with bindings cleared. NULL on error. */
sqlite3_stmt *store_stmt(store_t *s, const char *sql);
sqlite3 *store_db(store_t *s);
/* Logs the connection's last error with context; returns STORE_ERR. */
int store_fail(store_t *s, const char *what);
/* Maps a sqlite step result: SQLITE_CONSTRAINT_UNIQUE → STORE_CONFLICT. */
int store_step_rc(store_t *s, int rc, const char *what);
/* Copies column i as a malloc'd string (NULL for SQL NULL). */
char *store_col_str(sqlite3_stmt *st, int i);
/* Copies a BLOB/TEXT column into a malloc'd buffer with a NUL after it (PEM
 * keys are used as C strings); *len excludes the NUL. NULL on no memory. */
unsigned char *store_col_blob(sqlite3_stmt *st, int i, size_t *len);
int store_bind_str(sqlite3_stmt *st, int i, const char *v);

#endif
