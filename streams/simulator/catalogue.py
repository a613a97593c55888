"""Every primary scenario by the name the profiles use (``streams.simulator.profiles``)."""

from __future__ import annotations

from typing import Final

from streams.simulator import anomalies
from streams.simulator.scenarios import (
    Scenario,
    approved,
    auto_reversed,
    declined,
    retry_after_decline,
    timeout_no_money,
    timeout_reversed,
)

SCENARIO_FUNCTIONS: Final[dict[str, Scenario]] = {
    "approved": approved,
    "declined": declined,
    "timeout_no_money": timeout_no_money,
    "timeout_reversed": timeout_reversed,
    "auto_reversed": auto_reversed,
    "retry_after_decline": retry_after_decline,
    "network_failure": anomalies.network_failure,
    "network_failure_standin": anomalies.network_failure_standin,
    "issuer_late_response": anomalies.issuer_late_response,
    "terminal_fault": anomalies.terminal_fault,
    "terminal_fault_false_approval": anomalies.terminal_fault_false_approval,
    "reversal_lost": anomalies.reversal_lost,
    "account_restriction": anomalies.account_restriction,
    "merchant_configuration": anomalies.merchant_configuration,
    "operator_error_amount": anomalies.operator_error_amount,
    "operator_error_cancelled": anomalies.operator_error_cancelled,
    "payment_method_switch": anomalies.payment_method_switch,
    "duplicate_processing": anomalies.duplicate_processing,
}
