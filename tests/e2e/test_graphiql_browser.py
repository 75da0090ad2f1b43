"""GraphiQL in a real browser: the page loads from the gateway alone, takes the token from the URL
fragment, and runs the preloaded customer-360 example against the demo systems."""

from __future__ import annotations

from typing import Any

import pytest

from demo.run import demo_jwt
from demo.secrets import DemoSecrets
from gateway.graphiql import example_queries

pytestmark = pytest.mark.browser




def test_graphiql_runs_the_customer_360_example(browser: object, demo_gateway: str,
                                                 demo_secrets: DemoSecrets) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver: object = browser
    token = demo_jwt(demo_secrets, role="sales")
    driver.get(f"{demo_gateway}/graphql#token={token}")  # type: ignore[attr-defined]
    wait = WebDriverWait(driver, 30)
    run = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, ".graphiql-execute-button")))
    tabs = driver.find_elements(By.CSS_SELECTOR, ".graphiql-tab")  # type: ignore[attr-defined]
    assert len(tabs) == len(example_queries())  # the example queries, preloaded
    assert "#token" not in driver.current_url  # type: ignore[attr-defined]  # the page dropped the fragment
    run.click()
    wait.until(lambda d: '"customer"' in d.find_element(By.CSS_SELECTOR, ".result-window").text)
    result = driver.find_element(By.CSS_SELECTOR, ".result-window").text  # type: ignore[attr-defined]
    assert '"creditLimit"' in result and '"errors"' not in result


def test_graphiql_docs_explorer_and_autocompletion_have_the_schema(browser: object, demo_gateway: str,
                                                                   demo_secrets: DemoSecrets) -> None:
    """GraphiQL's own introspection query is answered for staff: the docs list Query's fields, and the
    editor completes a field name (both are empty when the introspection query is refused)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver: Any = browser
    driver.get(f"{demo_gateway}/graphql#token={demo_jwt(demo_secrets, role='support')}")
    wait = WebDriverWait(driver, 30)
    docs = wait.until(ec.element_to_be_clickable(
        (By.XPATH, "//button[contains(@aria-label, 'Documentation Explorer')]")))
    docs.click()
    query_type = wait.until(ec.element_to_be_clickable(
        (By.XPATH, "//a[contains(@class, 'graphiql-doc-explorer-type-name') and text()='Query']")))
    query_type.click()
    wait.until(lambda d: "purchaseOrders" in _texts(d, ".graphiql-doc-explorer-field-name"))
    fields = _texts(driver, ".graphiql-doc-explorer-field-name")
    assert {"customer", "orders", "products", "node", "health"} <= set(fields)

    editor = driver.find_element(By.CSS_SELECTOR, ".graphiql-query-editor .CodeMirror")
    driver.execute_script("arguments[0].CodeMirror.setValue(''); arguments[0].CodeMirror.focus();", editor)
    editor.find_element(By.CSS_SELECTOR, "textarea").send_keys("{ purchaseOr")
    wait.until(lambda d: "purchaseOrders" in _texts(d, ".CodeMirror-hint"))
    editor.find_element(By.CSS_SELECTOR, "textarea").send_keys(Keys.ENTER)
    value = driver.execute_script("return arguments[0].CodeMirror.getValue();", editor)
    assert value.startswith("{ purchaseOrders"), value


def _texts(driver: Any, selector: str) -> list[str]:
    from selenium.webdriver.common.by import By

    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, selector)]
