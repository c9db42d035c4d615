-- The user's own activity, exits by hand, and the operator kill switch (issue 11, section 2).
--
-- execution_orders already holds what the activity function shows (fills, the entry fee, exit price
-- and reason, the realized P&L net of every fee); what was missing:
-- - exit_fee: the fees of the fills that closed the position. realized_pnl already had them taken off,
--   but "fees paid" could only count the entry's;
-- - close_order_link_id / close_requested_at: a close by hand (the executor's close_position) is
--   claimed on the row, under its lock, before the reduce-only order is sent with this deterministic
--   orderLinkId, so a repeated call finds the claim and sends nothing twice.
-- - cancel_requested_at: the same for cancel_order.
-- Users read these columns through the table-level SELECT grant and the owner policy they already have.

alter table public.execution_orders
  add column exit_fee numeric check (exit_fee >= 0),
  add column close_order_link_id text unique check (close_order_link_id ~ '^[A-Za-z0-9_-]{1,36}$'),
  add column close_requested_at timestamptz,
  add column cancel_requested_at timestamptz,
  add constraint execution_orders_close_claim_check
    check ((close_order_link_id is null) = (close_requested_at is null));

-- The activity function's keyset pages: a user's trade log newest first, by id.
create index trade_logs_user_id_idx on public.trade_logs (user_id, id desc);

-- The kill switch, off, for databases that predate it (a fresh one also gets it from the seed). Its value
-- is false, or {"halted": bool, "reason", "by", "at"} once an operator set it; app_settings' audit
-- trigger records every change (who, when, the value with its reason) in audit_log.
insert into public.app_settings (key, value, description)
values ('trading_halted', 'false'::jsonb,
        'Operator kill switch: while halted, no executor path places a new order; exits and tracking go on')
on conflict (key) do nothing;
