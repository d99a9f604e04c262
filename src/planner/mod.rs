//! M-Scheduler: the event-F1 model, the cost model and the planners.
