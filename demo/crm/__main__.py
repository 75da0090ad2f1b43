"""`python -m demo.crm --port 8101`: the sample CRM."""

from demo.crm.app import create_app
from demo.serve import parser, serve

if __name__ == "__main__":
    serve(parser("The sample CRM.").parse_args(), "crm",
          lambda world, s, faults: create_app(world, client_id=s.crm_client_id, client_secret=s.crm_client_secret,
                                              admin_key=s.admin_key, faults=faults))
