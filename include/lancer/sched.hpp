// Everything in lancer/sched: task<T>, the scheduler, signals, the clock and the awaitables.
#pragma once

#include "lancer/sched/awaitables.hpp"
#include "lancer/sched/clock.hpp"
#include "lancer/sched/scheduler.hpp"
#include "lancer/sched/signal.hpp"
#include "lancer/sched/task.hpp"
