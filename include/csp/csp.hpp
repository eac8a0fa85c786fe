// csp/csp.hpp - the one header to include.
#pragma once

#include "channel.hpp"
#include "dump.hpp"
#include "executor.hpp"
#include "go.hpp"
#include "net.hpp"
#include "poller.hpp"
#include "run_loop.hpp"
#include "runtime.hpp"
#include "select.hpp"
#include "sync_wait.hpp"
#include "task.hpp"
#include "testing.hpp"
#include "timer.hpp"
#include "wait_group.hpp"
#include "work_stealing_pool.hpp"
