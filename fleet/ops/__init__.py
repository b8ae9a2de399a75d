"""Operations loop: day-ahead cycle, bids, awards, intraday re-dispatch, backtest."""
