from saleor_discord_app.cli import main

main()
