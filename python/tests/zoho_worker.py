"""One SDK process for the race test: waits at a start gate, initializes the real Zoho SDK
with a TokenvaultStore by user name, and prints the access token the SDK got.

Usage: zoho_worker.py BASE_URL STORE_URI KEY_HEX USER GATE_FILE

Once its store is open it creates GATE_FILE.ready.<pid>, so the parent can open the gate when
every worker is waiting at it.
"""

import os
import sys
import time

from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.crm.api.dc.data_center import DataCenter
from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer
from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

from tokenvault.zoho import TokenvaultStore


def main():
    base_url, store_uri, key_hex, user, gate = sys.argv[1:6]
    env = DataCenter.Environment(base_url, base_url + "/oauth/v2/token", base_url)
    store = TokenvaultStore(store_uri, key=bytes.fromhex(key_hex))
    open("%s.ready.%d" % (gate, os.getpid()), "w").close()
    while not os.path.exists(gate):
        time.sleep(0.002)
    token = OAuthToken(user_signature=UserSignature(user))
    Initializer.initialize(environment=env, token=token, store=store,
                           resource_path=os.path.dirname(gate))
    print(token.get_access_token(), flush=True)


if __name__ == "__main__":
    main()
