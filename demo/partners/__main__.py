"""`python -m demo.partners supplier|logistics --port N`: a sample partner system."""

from demo.partners import logistics, supplier
from demo.serve import parser, serve

if __name__ == "__main__":
    p = parser("A sample partner system.")
    p.add_argument("system", choices=["supplier", "logistics"])
    args = p.parse_args()
    if args.system == "supplier":
        serve(args, "supplier", lambda world, s, faults: supplier.create_app(
            world, api_key=s.supplier_api_key, admin_key=s.admin_key, faults=faults))
    else:
        serve(args, "logistics", lambda world, s, faults: logistics.create_app(
            world, username=s.logistics_user, password=s.logistics_password, admin_key=s.admin_key, faults=faults))
