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
#include <stddef.h>
#include <stdint.h>

typedef struct store store_t;

enum store_rc {
    STORE_OK = 0,
    STORE_ERR = -1,       /* I/O, corruption, busy past the timeout: logged */
    STORE_NOTFOUND = -2,
    STORE_CONFLICT = -3,  /* a uniqueness rule refused the write */
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

/* Forces a WAL checkpoint (clean shutdown). */
int store_checkpoint(store_t *s);

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
