-- compose.yaml's MariaDB target (run once by the image's entrypoint, on an empty data dir):
-- the admin leasehold rotates with, and a pool of two accounts for deploy/registrations/inventory-db.yaml.
-- The passwords are demo values: registration rotates both accounts at once, and moves the
-- admin password into Vault.
CREATE DATABASE IF NOT EXISTS inventory;
CREATE TABLE IF NOT EXISTS inventory.items (sku VARCHAR(32) PRIMARY KEY, quantity INT);
INSERT IGNORE INTO inventory.items VALUES ('A-1', 12), ('B-2', 7);

-- CREATE USER lets it ALTER USER (change passwords); CONNECTION ADMIN lets it KILL the
-- account's sessions when a lease ends (rotation.terminateSessions).
CREATE USER IF NOT EXISTS 'leasehold_admin'@'%' IDENTIFIED BY 'mariadb-leasehold-admin-demo';
GRANT CREATE USER, PROCESS, CONNECTION ADMIN ON *.* TO 'leasehold_admin'@'%';

CREATE USER IF NOT EXISTS 'app_inventory_1'@'%' IDENTIFIED BY 'inventory-dba-knows-this-1';
CREATE USER IF NOT EXISTS 'app_inventory_2'@'%' IDENTIFIED BY 'inventory-dba-knows-this-2';
GRANT SELECT ON inventory.* TO 'app_inventory_1'@'%', 'app_inventory_2'@'%';
