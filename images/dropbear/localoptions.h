/* wanflash's Dropbear: a key-only SSH server for the operator's `wanctl`.
 * Read by Dropbear's options.h over default_options.h; the builder copies
 * this file into the source tree before `configure` (crates/image/src/dropbear.rs).
 * Everything a router does not need is compiled out, so it cannot be
 * switched on by a command-line flag or a stray authorized_keys option. */

/* Authentication: public keys only. No password, PAM or
 * keyboard-interactive code is in the binary. */
#define DROPBEAR_SVR_PASSWORD_AUTH 0
#define DROPBEAR_SVR_PAM_AUTH 0
#define DROPBEAR_SVR_PUBKEY_AUTH 1
/* authorized_keys options: `command=` (the forced wanctl wrapper),
 * `no-pty`, `no-port-forwarding`, ... */
#define DROPBEAR_SVR_PUBKEY_OPTIONS 1

/* No forwarding of any kind, no SFTP subsystem (the image has no
 * sftp-server), no motd. */
#define DROPBEAR_X11FWD 0
#define DROPBEAR_SVR_AGENTFWD 0
#define DROPBEAR_SVR_LOCALTCPFWD 0
#define DROPBEAR_SVR_REMOTETCPFWD 0
#define DROPBEAR_SFTPSERVER 0
#define DO_MOTD 0
#define INETD_MODE 0

/* The client side is not built; keep its code out of the shared files. */
#define DROPBEAR_CLI_LOCALTCPFWD 0
#define DROPBEAR_CLI_REMOTETCPFWD 0
#define DROPBEAR_CLI_AGENTFWD 0
#define DROPBEAR_CLI_PROXYCMD 0
#define DROPBEAR_CLI_NETCAT 0
#define DROPBEAR_CLI_PASSWORD_AUTH 0
#define DROPBEAR_USE_PASSWORD_ENV 0

/* Keys: ed25519 and ECDSA (host and user); no RSA or DSS. */
#define DROPBEAR_ED25519 1
#define DROPBEAR_ECDSA 1
#define DROPBEAR_RSA 0
#define DROPBEAR_RSA_SHA1 0
#define DROPBEAR_DSS 0
#define DROPBEAR_SK_KEYS 1
/* The host key is made by wanflash-update before the server starts. */
#define DROPBEAR_DELAY_HOSTKEY 0

/* Key exchange: curve25519 and ECDH; no finite-field Diffie-Hellman. */
#define DROPBEAR_CURVE25519 1
#define DROPBEAR_ECDH 1
#define DROPBEAR_DH_GROUP1 0
#define DROPBEAR_DH_GROUP14_SHA1 0
#define DROPBEAR_DH_GROUP14_SHA256 0
#define DROPBEAR_DH_GROUP16 0

/* Ciphers and MACs: chacha20-poly1305 and AES-CTR (libtomcrypt's portable
 * C code, no AES-NI needed) with HMAC-SHA2-256. */
#define DROPBEAR_CHACHA20POLY1305 1
#define DROPBEAR_AES128 1
#define DROPBEAR_AES256 1
#define DROPBEAR_3DES 0
#define DROPBEAR_ENABLE_CTR_MODE 1
#define DROPBEAR_ENABLE_CBC_MODE 0
#define DROPBEAR_ENABLE_GCM_MODE 0
#define DROPBEAR_SHA1_HMAC 0
#define DROPBEAR_SHA1_96_HMAC 0
#define DROPBEAR_SHA2_256_HMAC 1
#define DROPBEAR_SHA2_512_HMAC 0

/* Limits on what the network can make it hold: at most 2 connections
 * per source address and 8 in all before authentication, 3
 * authentication attempts per connection, 30 s to authenticate. */
#define MAX_UNAUTH_PER_IP 2
#define MAX_UNAUTH_CLIENTS 8
#define MAX_AUTH_TRIES 3
#define AUTH_TIMEOUT 30

#define DROPBEAR_PIDFILE "/run/ssh/dropbear.pid"
#define DEFAULT_PATH "/usr/bin:/bin"
#define DEFAULT_ROOT_PATH "/usr/sbin:/usr/bin:/sbin:/bin"
