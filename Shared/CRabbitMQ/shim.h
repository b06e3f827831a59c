#ifndef C_RABBITMQ_SHIM_H
#define C_RABBITMQ_SHIM_H

// rabbitmq-c moved its headers under rabbitmq-c/ in 0.12; Debian 12 ships 0.11 with flat headers.
#if __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/tcp_socket.h>
#else
#include <amqp.h>
#include <amqp_tcp_socket.h>
#endif

// amqp_login is variadic, which Swift cannot call: the login, announcing client properties (the connection
// name shown by the broker).
static inline amqp_rpc_reply_t c_amqp_login_plain_with_properties(amqp_connection_state_t state, const char *vhost,
                                                                  int channel_max, int frame_max, int heartbeat,
                                                                  const amqp_table_t *properties,
                                                                  const char *user, const char *password) {
    return amqp_login_with_properties(state, vhost, channel_max, frame_max, heartbeat, properties,
                                      AMQP_SASL_METHOD_PLAIN, user, password);
}

// Macros that Swift does not import.
static inline amqp_bytes_t c_amqp_empty_bytes(void) { return amqp_empty_bytes; }
static inline amqp_table_t c_amqp_empty_table(void) { return amqp_empty_table; }

#endif
