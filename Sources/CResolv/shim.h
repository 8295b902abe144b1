#pragma once
// glibc's stub resolver (libresolv) for DNSResolver. Most of its API is
// macros: res_ninit and res_nclose rename __res_* functions, and the ns_rr
// and ns_msg accessors read struct fields. Swift imports neither, so each is
// wrapped here in a static inline function with an hk_ name.
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <resolv.h>
#include <netdb.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>

// A zeroed resolver state on the heap (res_ninit expects zeroed memory);
// NULL when out of memory. Free with hk_res_state_free after hk_res_nclose.
static inline res_state hk_res_state_new(void) {
    return (res_state)calloc(1, sizeof(struct __res_state));
}

static inline void hk_res_state_free(res_state state) { free(state); }

// Reads /etc/resolv.conf (and RES_OPTIONS, LOCALDOMAIN) into the state; 0 or -1.
static inline int hk_res_ninit(res_state state) { return res_ninit(state); }

// Closes the state's sockets and frees the IPv6 name server copies.
static inline void hk_res_nclose(res_state state) { res_nclose(state); }

// One query of class IN; the answer's length, or -1 with hk_res_h_errno set.
static inline int hk_res_nquery(res_state state, const char *name, int type,
                                unsigned char *answer, int length) {
    return res_nquery(state, name, ns_c_in, type, answer, length);
}

// HOST_NOT_FOUND, TRY_AGAIN, NO_RECOVERY, NO_DATA or NETDB_INTERNAL after a
// failed query.
static inline int hk_res_h_errno(const struct __res_state *state) { return state->res_h_errno; }

static inline unsigned long hk_res_options(const struct __res_state *state) { return state->options; }
static inline void hk_res_set_options(res_state state, unsigned long options) { state->options = options; }

// retrans: seconds to wait for the first reply (glibc doubles it on each
// later round); retry: rounds over all name servers.
static inline void hk_res_set_timing(res_state state, int retrans, int retry) {
    state->retrans = retrans;
    state->retry = retry;
}

static inline int hk_res_nameserver_count(const struct __res_state *state) { return state->nscount; }

// Copies name server `index` into `out`; returns its address family, or 0
// when there is none. IPv6 servers live in _u._ext.nsaddrs with the IPv4
// slot's family cleared (glibc's update_from_conf).
static inline int hk_res_nameserver(const struct __res_state *state, int index,
                                    struct sockaddr_in6 *out) {
    if (index < 0 || index >= state->nscount || index >= MAXNS) return 0;
    memset(out, 0, sizeof(*out));
    if (state->nsaddr_list[index].sin_family == AF_INET) {
        memcpy(out, &state->nsaddr_list[index], sizeof(struct sockaddr_in));
        return AF_INET;
    }
    if (state->_u._ext.nsaddrs[index] != NULL
        && state->_u._ext.nsaddrs[index]->sin6_family == AF_INET6) {
        memcpy(out, state->_u._ext.nsaddrs[index], sizeof(*out));
        return AF_INET6;
    }
    return 0;
}

// Replaces the state's name servers with `count` (at most MAXNS) addresses,
// each a sockaddr_in or a sockaddr_in6 stored in a sockaddr_in6. IPv6
// addresses are copied to malloc'd memory that res_nclose frees, as
// res_ninit does for IPv6 lines of resolv.conf. Returns 0, or -1 when out
// of memory or given an unknown family.
static inline int hk_res_set_nameservers(res_state state, const struct sockaddr_in6 *list, int count) {
    if (count < 0 || count > MAXNS) return -1;
    for (int i = 0; i < MAXNS; i++) {
        free(state->_u._ext.nsaddrs[i]);
        state->_u._ext.nsaddrs[i] = NULL;
        memset(&state->nsaddr_list[i], 0, sizeof(state->nsaddr_list[i]));
    }
    state->nscount = 0;
    state->_u._ext.nscount = 0;
    for (int i = 0; i < count; i++) {
        if (list[i].sin6_family == AF_INET) {
            memcpy(&state->nsaddr_list[i], &list[i], sizeof(struct sockaddr_in));
        } else if (list[i].sin6_family == AF_INET6) {
            struct sockaddr_in6 *copy = (struct sockaddr_in6 *)malloc(sizeof(*copy));
            if (copy == NULL) return -1;
            memcpy(copy, &list[i], sizeof(*copy));
            state->_u._ext.nsaddrs[i] = copy;
            state->nsaddr_list[i].sin_family = 0;
        } else {
            return -1;
        }
        state->_u._ext.nssocks[i] = -1;
    }
    state->nscount = count;
    return 0;
}

static inline int hk_ns_msg_count(const ns_msg *message, ns_sect section) {
    return ns_msg_count(*message, section);
}

static inline int hk_ns_rr_type(const ns_rr *rr) { return ns_rr_type(*rr); }
static inline int hk_ns_rr_class(const ns_rr *rr) { return ns_rr_class(*rr); }
static inline int hk_ns_rr_rdlen(const ns_rr *rr) { return ns_rr_rdlen(*rr); }
static inline const unsigned char *hk_ns_rr_rdata(const ns_rr *rr) { return ns_rr_rdata(*rr); }
// The owner name, without a trailing dot; "." for the root.
static inline const char *hk_ns_rr_name(const ns_rr *rr) { return ns_rr_name(*rr); }

// The address family of an ifaddrs entry, 0 when it has no address.
static inline int hk_ifaddr_family(const struct ifaddrs *entry) {
    return entry->ifa_addr == NULL ? 0 : entry->ifa_addr->sa_family;
}
