#pragma once
// Berkeley DB 5.3 (Debian's libdb5.3), the format of sendmail's hash and
// btree maps. The handle's methods are function pointers; these wrappers
// keep the Swift side simple.
#include <db.h>
#include <string.h>

static inline int hk_db_create(DB **db) { return db_create(db, NULL, 0); }
static inline int hk_db_set_dup(DB *db) { return db->set_flags(db, DB_DUP); }
static inline int hk_db_open(DB *db, const char *file, DBTYPE type, u_int32_t flags, int mode) {
    return db->open(db, NULL, file, NULL, type, flags, mode);
}
static inline int hk_db_close(DB *db) { return db->close(db, 0); }
static inline int hk_db_sync(DB *db) { return db->sync(db, 0); }
static inline int hk_db_fd(DB *db, int *fd) { return db->fd(db, fd); }
static inline int hk_db_get_type(DB *db, DBTYPE *type) { return db->get_type(db, type); }

static inline int hk_db_put(DB *db, const void *key, u_int32_t klen, const void *val, u_int32_t vlen, int nooverwrite) {
    DBT k, v;
    memset(&k, 0, sizeof k); memset(&v, 0, sizeof v);
    k.data = (void *)key; k.size = klen;
    v.data = (void *)val; v.size = vlen;
    return db->put(db, NULL, &k, &v, nooverwrite ? DB_NOOVERWRITE : 0);
}

/* Looks a key up; on success *val points into Berkeley DB's memory, valid
   until the next call on the handle. */
static inline int hk_db_get(DB *db, const void *key, u_int32_t klen, void **val, u_int32_t *vlen) {
    DBT k, v;
    memset(&k, 0, sizeof k); memset(&v, 0, sizeof v);
    k.data = (void *)key; k.size = klen;
    int rc = db->get(db, NULL, &k, &v, 0);
    if (rc == 0) { *val = v.data; *vlen = v.size; }
    return rc;
}

static inline int hk_db_cursor(DB *db, DBC **cursor) { return db->cursor(db, NULL, cursor, 0); }
static inline int hk_dbc_next(DBC *c, void **key, u_int32_t *klen, void **val, u_int32_t *vlen) {
    DBT k, v;
    memset(&k, 0, sizeof k); memset(&v, 0, sizeof v);
    int rc = c->get(c, &k, &v, DB_NEXT);
    if (rc == 0) { *key = k.data; *klen = k.size; *val = v.data; *vlen = v.size; }
    return rc;
}
static inline int hk_dbc_close(DBC *c) { return c->close(c); }
static inline const char *hk_db_strerror(int rc) { return db_strerror(rc); }
