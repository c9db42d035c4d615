"""The trade executor: turns new signals into orders, once per (signal, user), and records every step.

The signals table is the queue. An executor run:

1. expires signals past ``expires_at`` and **claims** a batch of ``new`` ones, or ones whose claim went
   stale (:mod:`.queue`);
2. **fans out** each signal to the eligible users (:mod:`.eligibility` says who, :mod:`.fanout` runs it);
3. per user, reads the wallet and **sizes** the order, **reserves** the pair as a ``requested`` row
   committed before anything is sent, sets leverage and **places** the market order with SL/TP
   attached (:mod:`.pair`), retrying with the same ``orderLinkId`` (:mod:`.ids`, :mod:`.placement`);
4. records the result, then marks the signal ``executed`` or ``skipped``, or hands it back to the queue
   when the exchange left some pair unanswered (:mod:`.fanout`).

Writes are grouped a batch per statement (:mod:`.batching`); a run's clock and shared state is
:class:`.run.Run`; what the executor is given is :class:`.deps.ExecutorDeps`. A user's own trades are
:mod:`.manual`, their exits by hand (close a position, cancel an order) :mod:`.exits`, the operator
kill switch :mod:`.halt`, and the queue at a glance :mod:`.status`. All SQL is in ``lib.stores`` (``orders``,
``trade_logs``, ``signal_queue``, ``accounts``). Per account, order creation keeps to Bybit's 10 per
second.
"""
