/// @file
/// Everything of the engine layer in one include.
#pragma once

#include <cnetmod/engine/deadline.hpp>
#include <cnetmod/engine/endpoint.hpp>
#include <cnetmod/engine/io_context.hpp>
#include <cnetmod/engine/log.hpp>
#include <cnetmod/engine/mutex.hpp>
#include <cnetmod/engine/net_init.hpp>
#include <cnetmod/engine/registered_buffer.hpp>
#include <cnetmod/engine/runtime.hpp>
#include <cnetmod/engine/semaphore.hpp>
#include <cnetmod/engine/shared_buffer.hpp>
#include <cnetmod/engine/spawn.hpp>
#include <cnetmod/engine/task.hpp>
#include <cnetmod/engine/tcp_listener.hpp>
#include <cnetmod/engine/tcp_stream.hpp>
#include <cnetmod/engine/timer.hpp>
#include <cnetmod/engine/tls.hpp>
#include <cnetmod/engine/yield.hpp>
#include <cnetmod/version.hpp>
