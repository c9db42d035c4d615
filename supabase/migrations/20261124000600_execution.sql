-- Execution bookkeeping: how a position ended, and claims that outlive their executor.

alter table public.execution_orders
  add column exit_price numeric check (exit_price > 0),
  add column realized_pnl numeric,
  add column close_reason text check (close_reason in ('TakeProfit', 'StopLoss', 'Closed')),
  add column fee numeric not null default 0,
  add column attempts integer not null default 0 check (attempts >= 0);

-- A signal left in 'processing' by an executor that died is claimed again once its claim is stale.
create index signals_processing_idx on public.signals (claimed_at) where status = 'processing';
-- Open positions per user (max_open_positions) and today's realized P&L (daily loss limit).
create index execution_orders_user_open_idx on public.execution_orders (user_id)
  where status in ('requested', 'placed', 'partially_filled') or (status = 'filled' and closed_at is null);
create index execution_orders_user_closed_idx on public.execution_orders (user_id, closed_at)
  where closed_at is not null;
