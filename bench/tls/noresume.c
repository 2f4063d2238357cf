/* LD_PRELOAD shim for the load generator of bench/tls.sh: no TLS session
 * is ever resumed, so every new connection is a full handshake.
 *
 * wrk (and h2load) reconnect with SSL_clear() on the same SSL object, which
 * keeps the last session, so their "Connection: close" runs resume with a
 * session ticket instead of doing a full handshake. Here SSL_clear() also
 * forgets the session, and SSL_set_session() is ignored. bench/tls.sh
 * checks the effect against nginx's $ssl_session_reused before it counts.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;

static int (*real_set_session)(SSL *, SSL_SESSION *);
static int (*real_clear)(SSL *);

static void bind_real(void) {
    if (!real_set_session) real_set_session = (int (*)(SSL *, SSL_SESSION *))dlsym(RTLD_NEXT, "SSL_set_session");
    if (!real_clear) real_clear = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_clear");
}

int SSL_set_session(SSL *s, SSL_SESSION *session) {
    (void)session;
    bind_real();
    return real_set_session(s, NULL);
}

int SSL_clear(SSL *s) {
    bind_real();
    int r = real_clear(s);
    real_set_session(s, NULL);
    return r;
}
